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
    "曾今现来去让给要会能可该如若但而且则以及称讲道问答称作做办领取交缴申报请诉告"
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
    "名为",
    "姓",
    "致",
    "尊敬的",
    "亲爱的",
)
_ROLE_BEFORE = re.compile("(?:" + compile_words(ROLE_WORDS).pattern + r")[ \t]*[:：]?[ \t]*$")
_RIGHT_STRONG = re.compile(
    r"(?:先生|女士|小姐|同志|老师|医生|师傅|老人|夫妇|本人|身份证|公民身份|证件号|电话|手机|联系电话"
    r"|住址|家住|户籍|现住|居住|出生|签字|签名|名下|持有|驾驶|承租|租住|之子|之女|之妻|之夫|等[0-9一二三四五六七八九十]*人"
    r"|[，,（(]\s*(?:男|女|[0-9]{1,3}岁|身份证|公民身份))"
)
_VERBISH = frozenset("于在因称说将被向对系曾自到与和等已未今现经从把为是也都就")
_LIST_JOINERS = ("、", "和", "与", "及", "同", "跟", "，")
_CJK = re.compile(r"[\u4e00-\u9fff]")


_SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES) + ")|[" + SINGLE_SURNAMES + "]"
_GIVEN_CHAR = "(?:(?![" + re.escape("".join(sorted(STOP))) + "])[\u4e00-\u9fff])"
_ITEM = f"(?:{_SURNAME}){_GIVEN_CHAR}{{1,2}}"
_JOINER = re.compile("[、和与及]")


class PersonNameRecognizer(ChineseRecognizer):
    entity = PERSON
    _surname = re.compile(_SURNAME)
    # Not a list of places: 张家村和李家庄.
    _list = re.compile(f"{_ITEM}(?:[、和与及]{_ITEM})+")

    def find(self, text: str) -> Iterable[tuple[int, int, float]]:
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
        options = [(self._right(text, s_end + n), n) for n in range(given, 0, -1)]
        right, n = max(options)  # best right context; on a tie, the longer name
        if right < 0:
            return None
        end = s_end + n
        score = 0.0
        before = text[max(0, start - 12) : start]
        if _ROLE_BEFORE.search(before):
            score += 0.6
        elif listed:
            score += 0.45
        elif start - last_end <= 1 and (start == last_end or text[last_end:start] in _LIST_JOINERS):
            score += 0.6  # 张三、李四 / 张三和李四
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
