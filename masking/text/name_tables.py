"""What a Chinese person name is made of, and words that only look like one.

Tables, no logic: the surnames (single and compound), the characters that end a
given name, and the words and suffixes that make a surname-led word a place,
an organisation or a common word instead (王府井, 张家港市, 黄金, 马上).
"""

from __future__ import annotations

from masking.text.base import compile_words


def words(text: str) -> tuple[str, ...]:
    """A table written as words separated by spaces, a line or two instead of one a line."""
    return tuple(text.split())


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
COMPOUND_SURNAMES = words(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 "
    "轩辕 令狐 钟离 闻人 澹台 西门 南宫 独孤 端木 百里 呼延"
)
SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES) + ")|[" + SINGLE_SURNAMES + "]"

# Characters that end a given name: function words, verbs that follow a subject,
# units, punctuation. Deliberately not 小、大、明、东… which are common in names.
STOP = frozenset(
    "的了在是于因等与和及或系称说将把被为已未向对从到自也都就还又即并均由经所其之这那有无不没"
    "年月日时分号省市县区镇乡村路街组栋室个位名次份件项条款第共计约近余些么吗呢吧啊哦呀"
    "曾今现来去让给要会能可该如若但而且则以及称讲道问答称作做办领取交缴申报请诉告持"
    "、，。；：！？（）()“”‘’\"' \t\r\n0123456789"
    # and their ASCII forms: detection runs on text with full-width forms folded
    ",;:!?."
)
# Stop characters that are in given names all the same (来福, 自强, 向东, 有才, 为民,
# 可欣, 如意, 其昌, 若曦, 之涣, 道明, 会兰): after a cue, a name may hold them.
NAME_STOPS = frozenset("来自向有为可如其若之道会")
# The second character of these is rarely a given name: 张家 (the Zhang family), 李氏.
NOT_GIVEN_FIRST = frozenset("家氏某姓总局处科")

# After a name, these make the candidate a place or an organisation instead.
PLACE_SUFFIX = compile_words(
    words(
        "市 县 区 镇 乡 村 路 街 巷 山 湖 河 江 桥 寺 庙 湾 沟 坝 庄 "
        "屯 港 岛 口 门 园 馆 院 厂 局 站 楼 坡 岭 峡 洲 塘 井 城 府 "
        "宫 堂 苑 公司 集团 银行 大学 学校 中学 小学 医院 酒店 饭店 超市 "
        "商场 广场 大厦 委员会 居委会 村委会 派出所 景区 风景区 水库 电站 牌 "
        "号 路口 大道 新区 开发区 工业园 街道 社区 小区"
    )
)
# A surname character that ends a place name more often than it starts a
# person's (黄山风景区遗失…, 王府井遗失…): after another CJK character, skip it.
PLACE_END_SURNAMES = frozenset("区井庄山江门关海城湖桥")
# Candidates ending in these are places or institutions (白马寺, 李家庄).
PLACE_LAST = frozenset("寺庙市县区镇乡村路街巷桥港局厂站馆院店楼湾沟坝庄屯园宫府岛")

# Words that begin with a surname character and turn up where names do
# (相关人员信息, 负责人员名单): never names.
NOT_NAMES = frozenset(
    words(
        "信息 单位 单据 申请 申报 金额 金融 时间 时候 时期 原因 原件 方式 "
        "方面 方案 管理 安全 安排 公安 公司 公共 公开 国家 全部 全体 相关 "
        "明确 明显 成员 成本 成立 成年 计划 费用 车辆 房屋 房产 文件 文化 "
        "文书 高度 高速 严重 严格 马上 黄金 路段 程序 程度 周边 周末 周岁 "
        "常住 常用 平台 平时 平安 和解 章程 任务 任何 任职 应当 应该 应急 "
        "支付 支持 关于 关系 关键 关注 齐全 包括 单独 经营 经济 经过 经办 "
        "经查 项目 范围 标准 江湖 海关 海外 宣传 宋体 史料 时效 秦汉 明清 "
        "付款 付费 伍佰 农户 原始 原来 商户 住户 房主 全家 全员 公众 有关 "
        # after a contact verb or before 的身份证…: people who are no name
        "经常 委托方 权利 权益 权限 房东 房客 银行 官方 党员 华侨 游客 顾客 师傅 班主 安置 常务 相应 单方"
    )
)
# A surname character then one of these is an office, not a person (区政府负责,
# 由原单位出具): the given name would be a common word.
NOT_GIVEN = frozenset(
    words(
        "单位 政府 部门 机关 机构 组织 服务 中心 公司 银行 医院 学校 窗口 系统 平台 "
        "热线 委员 支部 办公 办事 人员 大队 中队 派出 街道 社区 村委 居委 "
        # adverbs after a subject whose first character is a surname's (申请人曾多次)
        "多次 先后 一直 依法 按时 如实 主动"
    )
)
