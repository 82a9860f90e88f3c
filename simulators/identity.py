"""Identifiers that look and validate like real ones: resident ID numbers, names, phone
numbers, bank card numbers, IMEIs; and an allocator that never hands one out twice.

Nothing here marks a fraudster: a fraud number comes from the same carrier ranges
as anyone's, a mule card from the same bank BINs.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulators.text import as_matrix, as_strings, concat, digits, luhn_digit

# GB 11643-1999, as in antifraud.events.types.id_check_char, vectorised.
_ID_WEIGHTS = np.array((7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)

TAICANG = "320585"
SUZHOU_REGIONS = ("320505", "320506", "320507", "320508", "320509", "320581", "320582", "320583")
"""Other Suzhou districts and county-level cities: neighbours who live or work in Taicang."""
OTHER_REGIONS = ("340104", "410105", "420106", "430102", "452122", "510107", "350582", "360102", "130102")
"""Provinces many migrant workers (and rented IDs) come from."""

CARRIERS = ("cmcc", "unicom", "telecom")
CARRIER_SHARE = (0.6, 0.22, 0.18)
CARRIER_PREFIXES: tuple[tuple[str, ...], ...] = (
    (
        "134",
        "135",
        "136",
        "137",
        "138",
        "139",
        "147",
        "150",
        "151",
        "152",
        "157",
        "158",
        "159",
        "172",
        "178",
        "182",
        "183",
        "184",
        "187",
        "188",
        "195",
        "198",
    ),
    ("130", "131", "132", "145", "155", "156", "166", "167", "171", "175", "176", "185", "186", "196"),
    ("133", "149", "153", "162", "173", "177", "180", "181", "189", "190", "191", "193", "199"),
)


@dataclass(frozen=True)
class Bank:
    code: str
    bin: str
    """Issuer prefix of its debit cards."""
    length: int
    """Card number length, check digit included."""


BANKS: tuple[Bank, ...] = (
    Bank("icbc", "622202", 19),
    Bank("abc", "622848", 19),
    Bank("boc", "621661", 19),
    Bank("ccb", "621700", 19),
    Bank("bocom", "622262", 17),
    Bank("cmb", "621483", 16),
    Bank("tcrcb", "623160", 19),
    Bank("bosz", "622883", 16),
)
BANK_SHARE = (0.2, 0.17, 0.12, 0.16, 0.08, 0.07, 0.13, 0.07)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅立新文斌宇浩凯鹏丹萍鑫晨雪琳晶欣怡佳婷俊峰海燕波辉亮振东雨轩梓涵子豪博文思远嘉怡浩然"

_TACS = (
    "35316209",
    "35824005",
    "86085303",
    "86101704",
    "86260304",
    "86389903",
    "86467105",
    "86570802",
    "86691903",
    "86742205",
    "86864404",
    "86983305",
    "35467810",
    "35294211",
    "35917110",
    "86133106",
)
"""Type allocation codes of common handset models (first 8 digits of an IMEI)."""


def id_numbers(
    rng: np.random.Generator,
    n: int,
    regions: tuple[str, ...],
    share: np.ndarray | None = None,
    born: tuple[str, str] = ("1945-01-01", "2006-12-31"),
) -> np.ndarray:
    """18-character resident ID numbers: region, birth date, sequence, GB 11643 check character."""
    region = np.array([r.encode() for r in regions], dtype="S6")[rng.choice(len(regions), n, p=share)]
    lo, hi = np.datetime64(born[0], "D"), np.datetime64(born[1], "D")
    day = lo + rng.integers(0, int((hi - lo).astype(int)) + 1, n).astype("timedelta64[D]")
    year = day.astype("datetime64[Y]").astype(np.int64) + 1970
    month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
    first17 = np.concatenate(
        [as_matrix(region), digits(year, 4), digits(month, 2), digits(dom, 2), digits(rng.integers(0, 1000, n), 3)],
        axis=1,
    )
    check = _ID_CHECK[((first17.astype(np.int64) - 48) @ _ID_WEIGHTS) % 11]
    return as_strings(np.concatenate([first17, check[:, None]], axis=1))


def names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chinese personal names (UTF-8): a common surname and one or two given characters."""
    surnames = np.array([c.encode() for c in SURNAMES])
    given = np.array([c.encode() for c in GIVEN])
    rank_weight = 1.0 / np.arange(1, len(surnames) + 1) ** 0.9
    out = concat(
        surnames[rng.choice(len(surnames), n, p=rank_weight / rank_weight.sum())], given[rng.integers(0, len(given), n)]
    )
    two = rng.random(n) < 0.7
    out[two] = concat(out[two], given[rng.integers(0, len(given), int(two.sum()))])
    return out


def phones(rng: np.random.Generator, carrier: np.ndarray) -> np.ndarray:
    """11-digit mobile numbers in the ranges of each row's carrier (index into CARRIERS)."""
    n = len(carrier)
    prefix = np.empty(n, dtype="S3")
    for c, ranges in enumerate(CARRIER_PREFIXES):
        rows = np.flatnonzero(carrier == c)
        prefix[rows] = np.array([r.encode() for r in ranges], dtype="S3")[rng.integers(0, len(ranges), len(rows))]
    return as_strings(np.concatenate([as_matrix(prefix), digits(rng.integers(0, 10**8, n), 8)], axis=1))


def card_numbers(rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
    """Debit card numbers: the bank's BIN, random digits and a Luhn check digit (16-19 long)."""
    out = np.empty(len(bank), dtype="S19")
    for b, spec in enumerate(BANKS):
        rows = np.flatnonzero(bank == b)
        body_len = spec.length - len(spec.bin) - 1
        body = np.concatenate(
            [
                np.broadcast_to(np.frombuffer(spec.bin.encode(), np.uint8), (len(rows), len(spec.bin))),
                digits(rng.integers(0, 10**body_len, len(rows)), body_len),
            ],
            axis=1,
        )
        out[rows] = as_strings(np.concatenate([body, luhn_digit(body)[:, None]], axis=1))
    return out


def imeis(rng: np.random.Generator, n: int) -> np.ndarray:
    """15-digit IMEIs: a common model's TAC, a serial number, a Luhn check digit."""
    tac = as_matrix(np.array([t.encode() for t in _TACS], dtype="S8"))[rng.integers(0, len(_TACS), n)]
    body = np.concatenate([tac, digits(rng.integers(0, 10**6, n), 6)], axis=1)
    return as_strings(np.concatenate([body, luhn_digit(body)[:, None]], axis=1))


@dataclass
class Allocator:
    """Hands out identifiers of one kind that were never handed out before (in this city)."""

    used: set[bytes] = field(default_factory=set)

    def take(self, draw: Callable[[int], np.ndarray], n: int) -> np.ndarray:
        """``n`` fresh values from ``draw(k)``, redrawing collisions; deterministic for a given rng."""
        taken: list[np.ndarray] = []
        missing = n
        while missing > 0:
            candidates = draw(missing + missing // 10 + 8)
            fresh = np.array([c not in self.used for c in candidates.tolist()], dtype=bool)
            _, first = np.unique(candidates, return_index=True)
            keep = np.zeros(len(candidates), dtype=bool)
            keep[first] = True
            chosen = candidates[keep & fresh][:missing]
            self.used.update(chosen.tolist())
            taken.append(chosen)
            missing -= len(chosen)
        return np.concatenate(taken) if taken else np.empty(0, dtype="S1")


def _per_group(group: np.ndarray, groups: int, dtype: str, make: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Values made group by group (``make(group, count)``), put back in the rows' order."""
    out = np.empty(len(group), dtype=dtype)
    for g in range(groups):
        rows = np.flatnonzero(group == g)
        out[rows] = make(g, len(rows))
    return out


@dataclass
class Identities:
    """One allocator per identifier kind, shared by the city, its daily life and the scenarios."""

    id_numbers: Allocator = field(default_factory=Allocator)
    phones: Allocator = field(default_factory=Allocator)
    accounts: Allocator = field(default_factory=Allocator)
    imeis: Allocator = field(default_factory=Allocator)

    def new_id_numbers(self, rng: np.random.Generator, n: int, regions: tuple[str, ...] = (TAICANG,)) -> np.ndarray:
        return self.id_numbers.take(lambda k: id_numbers(rng, k, regions), n)

    def new_phones(self, rng: np.random.Generator, carrier: np.ndarray) -> np.ndarray:
        """Fresh numbers, one per row of ``carrier``, each in its carrier's ranges."""
        return _per_group(
            carrier, len(CARRIERS), "S11", lambda c, n: self.phones.take(lambda k: phones(rng, np.full(k, c)), n)
        )

    def new_accounts(self, rng: np.random.Generator, bank: np.ndarray) -> np.ndarray:
        """Fresh card numbers, one per row of ``bank``."""
        return _per_group(
            bank, len(BANKS), "S19", lambda b, n: self.accounts.take(lambda k: card_numbers(rng, np.full(k, b)), n)
        )

    def new_imeis(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.imeis.take(lambda k: imeis(rng, k), n)
