"""Where names stand: the words around a Chinese person name that make it one.

Context rules, no recognizer: role words and titles before a name (当事人、法定代表人),
words that follow names (先生、身份证、陈述), and the frame of someone a service is
done for (为陈凯办理). The recognizer in masking.text.names weighs them.
"""

from __future__ import annotations

import re

from masking.text.base import compile_words
from masking.text.name_tables import NAME_STOPS, STOP, SURNAME, words

ROLE_WORDS = words(
    "当事人 法定代表人 代办人 法人代表 负责人 联系人 申请人 被申请人 户主 经办人 "
    "姓名 患者 病人 驾驶人 驾驶员 司机 车主 租户 承租人 出租人 业主 村民 "
    "居民 市民 群众 学生 员工 职工 老人 儿子 女儿 妻子 丈夫 之子 之女 "
    "其子 其女 其妻 其夫 其父 其母 母亲 父亲 委托人 受托人 代理人 监护人 被监护人 "
    "投诉人 举报人 被投诉人 被举报人 被处罚人 违法行为人 受害人 嫌疑人 "
    "犯罪嫌疑人 被告人 被告 原告 第三人 证人 债务人 债权人 股东 董事长 董事 "
    "监事 总经理 经理 厂长 站长 会计 出纳 收款人 付款人 户名 开户人 持卡人 "
    "借款人 担保人 保证人 签收人 送达人 承办人 执法人员 工作人员 办事员 "
    "网格员 调解员 村支书 书记 主任 组长 队长 校长 教师 老师 医生 护士 "
    "记者 店主 摊主 雇主 雇员 受益人 继承人 配偶 子女 孙子 孙女 外孙 兄弟 "
    "姐妹 哥哥 姐姐 弟弟 妹妹 亲属 家属 本人 救助对象 低保对象 特困人员 "
    "残疾人 申报人 纳税人 缴费人 参保人 被保险人 投保人 领取人 报案人 来访人 "
    "信访人 上访人 求助人 反映人 见证人 陪同人 签字人 对象 人员 公民 叫 "
    "名叫 持有人 个体户 个体工商户 经营者 收件人 寄件人 联络人 申领人 承包人 "
    "据 经 名为 姓 致 尊敬的 亲爱的"
)
_ROLES_BY_FIRST: dict[str, tuple[str, ...]] = {}
for _w in sorted(ROLE_WORDS, key=len, reverse=True):
    _ROLES_BY_FIRST[_w[0]] = (*_ROLES_BY_FIRST.get(_w[0], ()), _w)


def role_words_at(first: str) -> tuple[str, ...]:
    """The role words starting with `first`, longest first."""
    return _ROLES_BY_FIRST.get(first, ())


# Any title ending like one (经手人：, 副局长, 工作人员): role lists are never complete.
GENERIC_ROLE = re.compile(
    r"[\u4e00-\u9fff](?:人|员|长|者|师|主任|经理|书记|同学|同志)(?:[ \t]*[:：]?[ \t]*|为|是)$"
)
# Contact and agency verbs: the surname-led word after them is whom one calls or
# entrusts (请联系王小明, 致电王伟, 委托李娜代为领取), so they count as role words.
CONTACT_VERBS = words(
    "联系 联系上 联系了 电话联系 致电 电联 联络 委托 告知 转告 询问 通知 通知了 约谈 转交 交给 移交"
)
# A role word or contact verb, then a colon, spaces, 为 or 是 (联系人：, 法定代表人为).
# A form's label may carry a note in brackets: 申请人（签字）：, 法定代表人（负责人）：.
ROLE_BEFORE = re.compile(
    "(?:"
    + compile_words(ROLE_WORDS + CONTACT_VERBS).pattern
    + r")(?:[（(][^（）()]{1,6}[）)])?(?:[ \t]*[:：]?[ \t]*|为|是)$"
)
RIGHT_STRONG = re.compile(
    r"(?:先生|女士|小姐|同志|同学|老师|医生|师傅|老人|夫妇|本人|身份证|公民身份|证件号|电话|手机|联系电话"
    r"|住址|家住|户籍|现住|居住|出生|签字|签名|名下|持有|驾驶|承租|租住|之子|之女|之妻|之夫|等?[0-9一二两三四五六七八九十]+[人位名]|等人"
    r"|陈述|反映|介绍|交代|供述|证实|声称|表示|承认|辩称"
    r"|[，,（(]\s*(?:男|女|[0-9]{1,3}岁|身份证|公民身份))"
)
VERBISH = frozenset("于在因称说将被向对系曾自到与和等已未今现经从把为是也都就持")

# After a name already found, these join the next one (张三、李四, 王伟或李娜).
LIST_JOINERS = frozenset("、和与及同跟，或")

# A given-name character in a frame: any CJK but stop characters no name holds
# (not 的 of 黄文的联系方式; 来 of 王来福 is one).
_GIVEN = "(?:(?![" + re.escape("".join(sorted(STOP - NAME_STOPS))) + "])[\u4e00-\u9fff])"

# Someone a service is done for (为陈凯办理户籍迁入, 给张伟补办, 协助李娜核实): a
# preposition, a surname and one or two given-name characters, then a service verb,
# 的 or a boundary. The verb, not the stop list, ends the name (为王来福办理).
BENEFICIARY_BEFORE = ("为", "给", "替", "帮", "代", "协助", "帮助", "陪同", "通知", "联系")
SERVICE_VERBS = words(
    "办理 补办 代办 申请 申领 申报 核实 核查 核对 核验 查询 调取 认证 "
    "迁入 迁出 落户 登记 开具 出具 领取 换领 缴纳 变更 注销 更正 复核 "
    "审核 审批 挂失 确认 提供 发放 安置 转移 预约 咨询 打印 处理 补录 办 "
    "的"
)
BENEFICIARY = re.compile(
    "(?:"
    + "|".join(BENEFICIARY_BEFORE)
    + f")(?P<name>(?:{SURNAME}){_GIVEN}{{1,2}}?)"
    + "(?="
    + "|".join(sorted(SERVICE_VERBS, key=len, reverse=True))
    + r"|[（(，,、。；;：:\s]|$)"
)

# What follows a name in a frame (请联系王伟补正, 由王小明办理, 受李四委托): a verb
# that ends the name as well as a stop character would.
FRAME_AFTER = compile_words(
    SERVICE_VERBS
    + words(
        "委托 负责 经办 代为 签收 受理 承办 跟进 送达 陪同 介绍 提交 转交 联系 签字 "
        "补正 补充 补交 补齐 告知 到场 同意 说明 协助 协调 反馈 回复 表示 了解 沟通 "
        "签订 签署 共同 一同 一起 前来 住 尽快 立即 马上 务必 及时 亲自 拒不 拒绝 无法"
    )
)
# Whom one gets in touch with (请与王伟联系, 跟李娜核实): 与/和/跟/同, a name, the verb.
CONTACT_WITH = re.compile(
    f"(?:与|和|跟|同)(?P<name>(?:{SURNAME}){_GIVEN}{{1,2}}?)"
    + "(?=联系|联络|沟通|核实|核对|确认|对接|取得联系)"
)
# Someone acting for another (受张三委托, 由王小明办理, 由王伟于…提交): 受/由, a name,
# then the verb of the frame. Not 由于、由此 (于 is a surname: 由于王伟… has none).
AGENCY = re.compile(
    f"(?:受|由(?![于此]))(?P<name>(?:{SURNAME}){_GIVEN}{{1,2}}?)"
    + "(?="
    + FRAME_AFTER.pattern
    + "|于|[（(，,。；;、和与及]|$)"
)
# What a sentence-initial name owns (王小明的联系方式为…, 王伟的身份证已过期).
PERSONAL_INFO = words(
    "联系方式 联系电话 电话 手机 身份证 公民身份 证件 住址 家庭住址 现住址 居住地 户籍 "
    "银行卡 账户 护照 驾驶证 社保 医保 出生日期 个人信息 工作单位"
)
_SENTENCE_BOUNDARY = r"。；！？\n，,;!?：:\s"
POSSESSIVE = re.compile(
    f"(?<![^{_SENTENCE_BOUNDARY}])(?P<name>(?:{SURNAME}){_GIVEN}{{1,2}}?)"
    + "(?=的(?:"
    + compile_words(PERSONAL_INFO).pattern
    + "))"
)

# A name in two or more parts joined by a middle dot (阿依古丽·买买提, 买买提·艾力):
# Uyghur, Kazakh and transliterated names, which no surname table holds.
NAME_DOTS = "·•・‧"
# What ends the last part of a dotted name: punctuation (any non-CJK character) and
# the function words that follow a name (的、已、和、住…).
DOTTED_END = frozenset("的了已未于在和及与等是为称将被系均也并或同跟住") | frozenset(
    "、，。；：！？（）()“”‘’\"' \t\r\n0123456789,;:!?."
)
# A part after a dot holds no list joiner: 阿依古丽·买买提和阿力木·吐尔洪 are two names.
DOTTED = re.compile(
    f"[\u4e00-\u9fff]{{2,}}(?:[{NAME_DOTS}](?:(?![和与及或])[\u4e00-\u9fff]){{2,}})+"
)
# Before a dotted name, any of these marks where it starts (申请人阿依古丽·…, 由买买提·…).
DOTTED_CUE = re.compile(
    "(?:"
    + compile_words(ROLE_WORDS + CONTACT_VERBS + BENEFICIARY_BEFORE + ("受", "由")).pattern
    + r")(?:[ \t]*[:：]?[ \t]*|为|是)$|[和与及或同跟]$"
)
