"""Chinese person names: a surname table and context words, no model.

A name is a surname (single, or compound such as 欧阳) and one or two given-name
characters. Almost any character can be a surname or part of a given name, so
a candidate counts only with evidence around it: a role word before it
(当事人、法定代表人、联系人…), a word after it that follows names (先生、
女士、，男，、身份证…), a name just before it in a list (张三、李四), or a
sentence-initial subject followed by a verb-like character. A candidate
followed by a place or organisation suffix (张家口市、黄山风景区、王府井) is
dropped: those are names inside place names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from masking.text.base import ChineseRecognizer, compile_words
from masking.text.entities import PERSON

# The most frequent single-character surnames (about 99% of the population).
SINGLE_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向"
    "汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单"
    "季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄"
    "窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻"
    "苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练"
    "廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿"
    "鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植衡富尧闭由泽格"
    # Not 和: it joins lists (张三和李四) far more often than it is a surname.
    "萧赖洪"
)
COMPOUND_SURNAMES = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "轩辕",
    "令狐",
    "钟离",
    "闻人",
    "澹台",
    "西门",
    "南宫",
    "独孤",
    "端木",
    "百里",
    "呼延",
)

# Characters that end a given name: function words, verbs that follow a subject,
# units, punctuation. Deliberately not 小、大、明、东… which are common in names.
STOP = frozenset(
    "的了在是于因等与和及或系称说将把被为已未向对从到自也都就还又即并均由经所其之这那有无不没"
    "年月日时分号省市县区镇乡村路街组栋室个位名次份件项条款第共计约近余些么吗呢吧啊哦呀"
    "曾今现来去让给要会能可该如若但而且则以及称讲道问答称作做办领取交缴申报请诉告持"
    "、，。；：！？（）()“”‘’\"' \t\r\n0123456789"
)
# The second character of these is rarely a given name: 张家 (the Zhang family), 李氏.
NOT_GIVEN_FIRST = frozenset("家氏某姓总局处科")

# After a name, these make the candidate a place or an organisation instead.
PLACE_SUFFIX = compile_words(
    (
        "市",
        "县",
        "区",
        "镇",
        "乡",
        "村",
        "路",
        "街",
        "巷",
        "山",
        "湖",
        "河",
        "江",
        "桥",
        "寺",
        "庙",
        "湾",
        "沟",
        "坝",
        "庄",
        "屯",
        "港",
        "岛",
        "口",
        "门",
        "园",
        "馆",
        "院",
        "厂",
        "局",
        "站",
        "楼",
        "坡",
        "岭",
        "峡",
        "洲",
        "塘",
        "井",
        "城",
        "府",
        "宫",
        "堂",
        "苑",
        "公司",
        "集团",
        "银行",
        "大学",
        "学校",
        "中学",
        "小学",
        "医院",
        "酒店",
        "饭店",
        "超市",
        "商场",
        "广场",
        "大厦",
        "委员会",
        "居委会",
        "村委会",
        "派出所",
        "景区",
        "风景区",
        "水库",
        "电站",
        "牌",
        "号",
        "路口",
        "大道",
        "新区",
        "开发区",
        "工业园",
        "街道",
        "社区",
        "小区",
    )
)

ROLE_WORDS = (
    "当事人",
    "法定代表人",
    "法人代表",
    "负责人",
    "联系人",
    "申请人",
    "被申请人",
    "户主",
    "经办人",
    "姓名",
    "患者",
    "病人",
    "驾驶人",
    "驾驶员",
    "司机",
    "车主",
    "租户",
    "承租人",
    "出租人",
    "业主",
    "村民",
    "居民",
    "市民",
    "群众",
    "学生",
    "员工",
    "职工",
    "老人",
    "儿子",
    "女儿",
    "妻子",
    "丈夫",
    "之子",
    "之女",
    "其子",
    "其女",
    "其妻",
    "其夫",
    "母亲",
    "父亲",
    "委托人",
    "受托人",
    "代理人",
    "监护人",
    "被监护人",
    "投诉人",
    "举报人",
    "被投诉人",
    "被举报人",
    "被处罚人",
    "违法行为人",
    "受害人",
    "嫌疑人",
    "犯罪嫌疑人",
    "被告人",
    "被告",
    "原告",
    "第三人",
    "证人",
    "债务人",
    "债权人",
    "股东",
    "董事长",
    "董事",
    "监事",
    "总经理",
    "经理",
    "厂长",
    "站长",
    "会计",
    "出纳",
    "收款人",
    "付款人",
    "户名",
    "开户人",
    "持卡人",
    "借款人",
    "担保人",
    "保证人",
    "签收人",
    "送达人",
    "承办人",
    "执法人员",
    "工作人员",
    "办事员",
    "网格员",
    "调解员",
    "村支书",
    "书记",
    "主任",
    "组长",
    "队长",
    "校长",
    "教师",
    "老师",
    "医生",
    "护士",
    "记者",
    "店主",
    "摊主",
    "雇主",
    "雇员",
    "受益人",
    "继承人",
    "配偶",
    "子女",
    "孙子",
    "孙女",
    "外孙",
    "兄弟",
    "姐妹",
    "哥哥",
    "姐姐",
    "弟弟",
    "妹妹",
    "亲属",
    "家属",
    "本人",
    "救助对象",
    "低保对象",
    "特困人员",
    "残疾人",
    "申报人",
    "纳税人",
    "缴费人",
    "参保人",
    "被保险人",
    "投保人",
    "领取人",
    "报案人",
    "来访人",
    "信访人",
    "上访人",
    "求助人",
    "反映人",
    "见证人",
    "陪同人",
    "签字人",
    "对象",
    "人员",
    "公民",
    "叫",
    "名叫",
    "持有人",
    "个体户",
    "个体工商户",
    "经营者",
    "收件人",
    "寄件人",
    "联络人",
    "申领人",
    "承包人",
    "据",
    "经",
    "名为",
    "姓",
    "致",
    "尊敬的",
    "亲爱的",
)
_ROLES_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _w in sorted(ROLE_WORDS, key=len, reverse=True):
    _ROLES_BY_FIRST[_w[0]] = (*_ROLES_BY_FIRST.get(_w[0], ()), _w)


def _role_words_at(first: str) -> tuple[str, ...]:
    return _ROLES_BY_FIRST.get(first, ())


# Any title ending like one (经手人：, 副局长, 工作人员): role lists are never complete.
_GENERIC_ROLE = re.compile(
    r"[\u4e00-\u9fff](?:人|员|长|者|师|主任|经理|书记|同学|同志)[ \t]*[:：]?[ \t]*$"
)
# Words that begin with a surname character and turn up where names do
# (相关人员信息, 负责人员名单): never names.
NOT_NAMES = frozenset(
    [
        "信息",
        "单位",
        "单据",
        "申请",
        "申报",
        "金额",
        "金融",
        "时间",
        "时候",
        "时期",
        "原因",
        "原件",
        "方式",
        "方面",
        "方案",
        "管理",
        "安全",
        "安排",
        "公安",
        "公司",
        "公共",
        "公开",
        "国家",
        "全部",
        "全体",
        "相关",
        "明确",
        "明显",
        "成员",
        "成本",
        "成立",
        "成年",
        "计划",
        "费用",
        "车辆",
        "房屋",
        "房产",
        "文件",
        "文化",
        "文书",
        "高度",
        "高速",
        "严重",
        "严格",
        "马上",
        "黄金",
        "路段",
        "程序",
        "程度",
        "周边",
        "周末",
        "周岁",
        "常住",
        "常用",
        "平台",
        "平时",
        "平安",
        "和解",
        "章程",
        "任务",
        "任何",
        "任职",
        "应当",
        "应该",
        "应急",
        "支付",
        "支持",
        "关于",
        "关系",
        "关键",
        "关注",
        "齐全",
        "包括",
        "单独",
        "经营",
        "经济",
        "经过",
        "经办",
        "经查",
        "项目",
        "范围",
        "标准",
        "江湖",
        "海关",
        "海外",
        "宣传",
        "宋体",
        "史料",
        "时效",
        "秦汉",
        "明清",
        "付款",
        "付费",
        "伍佰",
        "农户",
        "原始",
        "原来",
        "商户",
        "住户",
        "房主",
        "全家",
        "全员",
        "公众",
        "有关",
    ]
)
_ROLE_BEFORE = re.compile("(?:" + compile_words(ROLE_WORDS).pattern + r")[ \t]*[:：]?[ \t]*$")
_RIGHT_STRONG = re.compile(
    r"(?:先生|女士|小姐|同志|同学|老师|医生|师傅|老人|夫妇|本人|身份证|公民身份|证件号|电话|手机|联系电话"
    r"|住址|家住|户籍|现住|居住|出生|签字|签名|名下|持有|驾驶|承租|租住|之子|之女|之妻|之夫|等[0-9一二三四五六七八九十]*人"
    r"|陈述|反映|介绍|交代|供述|证实|声称|表示|承认|辩称"
    r"|[，,（(]\s*(?:男|女|[0-9]{1,3}岁|身份证|公民身份))"
)
_VERBISH = frozenset("于在因称说将被向对系曾自到与和等已未今现经从把为是也都就持")
# A surname character that ends a place name more often than it starts a
# person's (黄山风景区遗失…, 王府井遗失…): after another CJK character, skip it.
_PLACE_END_SURNAMES = frozenset("区井庄山江门关海城湖桥")
# Candidates ending in these are places or institutions (白马寺, 李家庄).
_PLACE_LAST = frozenset("寺庙市县区镇乡村路街巷桥港局厂站馆院店楼湾沟坝庄屯园宫府岛")

_LIST_JOINERS = ("、", "和", "与", "及", "同", "跟", "，")
_CJK = re.compile(r"[\u4e00-\u9fff]")


_SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES) + ")|[" + SINGLE_SURNAMES + "]"
_GIVEN_CHAR = "(?:(?![" + re.escape("".join(sorted(STOP))) + "])[\u4e00-\u9fff])"
_ITEM = f"(?:{_SURNAME}){_GIVEN_CHAR}{{1,2}}"
_JOINER = re.compile("[、和与及]")

# Someone a service is done for (为陈凯办理户籍迁入, 给张伟补办, 协助李娜核实): a
# preposition, a surname and one or two given-name characters, then a service verb,
# 的 or a boundary. The verb, not the stop list, ends the name (为王来福办理).
BENEFICIARY_BEFORE = ("为", "给", "替", "帮", "代", "协助", "帮助", "陪同", "通知", "联系")
SERVICE_VERBS = (
    "办理",
    "补办",
    "代办",
    "申请",
    "申领",
    "申报",
    "核实",
    "核查",
    "核对",
    "核验",
    "查询",
    "调取",
    "认证",
    "迁入",
    "迁出",
    "落户",
    "登记",
    "开具",
    "出具",
    "领取",
    "换领",
    "缴纳",
    "变更",
    "注销",
    "更正",
    "复核",
    "审核",
    "审批",
    "挂失",
    "确认",
    "提供",
    "发放",
    "安置",
    "转移",
    "预约",
    "咨询",
    "打印",
    "处理",
    "补录",
    "办",
    "的",
)
_BENEFICIARY = re.compile(
    "(?:"
    + "|".join(BENEFICIARY_BEFORE)
    + f")(?P<name>(?:{_SURNAME})[\u4e00-\u9fff]{{1,2}}?)"
    + "(?="
    + "|".join(sorted(SERVICE_VERBS, key=len, reverse=True))
    + r"|[（(，,、。；;：:\s]|$)"
)
_BARE = re.compile(f"(?:{_SURNAME})[\u4e00-\u9fff]{{1,2}}")


def _not_a_name(word: str) -> bool:
    return word in NOT_NAMES or word[:2] in NOT_NAMES or word in ROLE_WORDS


def bare_name(text: str) -> bool:
    """Is the whole text shaped like a name alone (陈凯, 欧阳建平)? For short fields such
    as a purpose, where a name with no context around it is still a name."""
    return _BARE.fullmatch(text) is not None and not _not_a_name(text)


class CnPersonNameRecognizer(ChineseRecognizer):
    title = "姓名"
    entity = PERSON
    _surname = re.compile(_SURNAME)
    # Not a list of places: 张家村和李家庄.
    _list = re.compile(f"{_ITEM}(?:[、和与及]{_ITEM})+")

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
        for m in _BENEFICIARY.finditer(text):
            name = m.group("name")
            if not _not_a_name(name) and name[-1] not in _PLACE_LAST:
                yield m.start("name"), m.end("name"), 0.85
        listed = self._listed(text)
        last_end = -10
        pos = 0
        while True:
            m = self._surname.search(text, pos)
            if m is None:
                return
            found = self._candidate(text, m.start(), m.end(), last_end, m.start() in listed)
            if found is None:
                pos = m.start() + 1
                continue
            end, score = found
            yield m.start(), end, score
            last_end = end
            pos = end

    def _given(self, text: str, at: int) -> int:
        """How many given-name characters (0-2) follow a surname ending at `at`."""
        n = 0
        while n < 2 and at + n < len(text):
            ch = text[at + n]
            if ch in STOP or not _CJK.match(ch):
                break
            n += 1
        if n and text[at] in NOT_GIVEN_FIRST:
            return 0
        return n

    def _right(self, text: str, end: int) -> int:
        """2: a word that follows names; 1: a boundary (end, punctuation, stop); 0: more text."""
        if end >= len(text):
            return 1
        if _RIGHT_STRONG.match(text, end):
            return 2
        if PLACE_SUFFIX.match(text, end):
            return -1
        return 1 if text[end] in STOP else 0

    def _listed(self, text: str) -> set[int]:
        """Starts of the items of a list of two or more surname-led words (李四、王五和赵六)."""
        starts: set[int] = set()
        for m in self._list.finditer(text):
            starts.add(m.start())
            starts.update(m.start() + j.end() for j in _JOINER.finditer(m.group()))
        return starts

    def _candidate(
        self, text: str, start: int, s_end: int, last_end: int, listed: bool = False
    ) -> tuple[int, float] | None:
        given = self._given(text, s_end)
        if given == 0:
            return None
        if _RIGHT_STRONG.match(text, start):
            return None  # 陈述、表示…: the word after a name, not a name
        before = text[max(0, start - 12) : start]
        role_before = bool(_ROLE_BEFORE.search(before) or _GENERIC_ROLE.search(before))
        joined = start > last_end and text[last_end:start] in _LIST_JOINERS
        if (
            not (role_before or listed or joined)
            and start > 0
            and text[start] in _PLACE_END_SURNAMES
            and _CJK.match(text[start - 1])
        ):
            return None
        if any(text.startswith(w, start) for w in _role_words_at(text[start])):
            return None  # 车主、来访人: a role word, not 车/来 + a given name
        options = [
            (-1 if text[s_end + n - 1] in _PLACE_LAST else self._right(text, s_end + n), n)
            for n in range(given, 0, -1)
        ]
        right, n = max(options)  # best right context; on a tie, the longer name
        if text[start : s_end + n] in NOT_NAMES or text[start : s_end + 2] in NOT_NAMES:
            return None
        if right < 0:
            return None
        end = s_end + n
        score = 0.0
        if role_before or joined:
            score += 0.6  # 当事人张三 / 张三、李四 (after a name already found)
        elif listed:
            score += 0.45
        if right == 2:
            score += 0.5
        elif right == 1:
            score += 0.1
        sentence_start = start == 0 or text[start - 1] in "。；！？\n，,;!?：:"
        if score < 0.5 and right == 1 and sentence_start and text[end : end + 1] in _VERBISH:
            score += 0.45  # a sentence-initial subject: 王小明于2023年…
        if start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
            score -= 0.3
        return (end, min(score, 1.0)) if score >= self.min_score else None
