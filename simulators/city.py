"""The synthetic city: its people, their circles, banks, carriers, cells and merchants.

Built once per seed, vectorised, and read-only afterwards (new SIMs, cards and
numbers come from ``city.ids``, which keeps every identifier unique). Cells have
registered locations and LACs: the carrier's cell registry, exported next to the
events file for the fake base station detector.
"""

from dataclasses import dataclass

import numpy as np

from simulators.identity import (
    BANK_SHARE,
    BANKS,
    CARRIER_SHARE,
    CARRIERS,
    SUZHOU_REGIONS,
    TAICANG,
    Identities,
    id_numbers,
    names,
)
from simulators.text import as_strings, concat, digits

MICRO = 1_000_000
"""Coordinates are kept as integer micro-degrees, so that every rendered float is exact."""

DISTRICTS: tuple[tuple[str, float, float, float], ...] = (
    ("chengxiang", 31.4570, 121.1050, 0.30),
    ("kejiao", 31.4370, 121.1400, 0.14),
    ("shaxi", 31.5570, 121.0550, 0.12),
    ("liuhe", 31.5070, 121.2910, 0.10),
    ("fuqiao", 31.6000, 121.1950, 0.10),
    ("huangjing", 31.6300, 121.1000, 0.08),
    ("shuangfeng", 31.4970, 121.0340, 0.08),
    ("gangqu", 31.6210, 121.2500, 0.08),
)
"""Taicang's towns: name, centre latitude, longitude, share of residents."""

MNC = ("00", "01", "11")
"""Mobile network codes of the three carriers, as in their cell ids ``460-MNC-LAC-CI``."""

SERVICES: tuple[tuple[str, str], ...] = (
    ("95588", "icbc.com.cn"),
    ("95599", "abchina.com"),
    ("95566", "boc.cn"),
    ("95533", "ccb.com"),
    ("95559", "bankcomm.com"),
    ("95555", "cmbchina.com"),
    ("10086", "10086.cn"),
    ("10010", "10010.com"),
    ("10000", "189.cn"),
    ("12345", "taicang.gov.cn"),
    ("12306", "12306.cn"),
    ("12366", "jiangsu.chinatax.gov.cn"),
    ("95338", "sf-express.com"),
    ("96110", "suzhou.gov.cn"),
)
"""Service numbers people call and receive texts from, with the domain their links point to."""

MERCHANT_KINDS = (
    "超市",
    "餐饮店",
    "便利店",
    "大药房",
    "五金店",
    "服装店",
    "电器商行",
    "水果店",
    "物业管理有限公司",
    "燃气有限公司",
    "自来水有限公司",
    "汽车维修中心",
    "幼儿园",
    "培训中心",
    "家具城",
)


@dataclass(frozen=True)
class Groups:
    """Members of numbered groups in CSR form: a person's contacts, a bank's branches, an operator's cells."""

    ptr: np.ndarray
    members: np.ndarray

    @classmethod
    def of(cls, label: np.ndarray, groups: int) -> "Groups":
        """Group items ``0..len(label)-1`` by their label; every group must have a member."""
        order = np.argsort(label, kind="stable")
        ptr = np.concatenate([[0], np.cumsum(np.bincount(label, minlength=groups))]).astype(np.int64)
        if (np.diff(ptr) == 0).any():
            raise ValueError("the city is too small: a group has no member (use more people)")
        return cls(ptr, order.astype(np.int64))

    def size(self, group: np.ndarray) -> np.ndarray:
        return self.ptr[group + 1] - self.ptr[group]

    def pick(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        """One random member of each given group."""
        return self.members[self.ptr[group] + (rng.random(len(group)) * self.size(group)).astype(np.int64)]


@dataclass(frozen=True)
class Cells:
    """The carriers' registered cells."""

    cell_id: np.ndarray
    operator: np.ndarray
    lac: np.ndarray
    lat_u: np.ndarray
    lon_u: np.ndarray
    district: np.ndarray
    encryption: np.ndarray
    """The cell's normal cipher level (2 or 3)."""

    def registry(self) -> list[dict[str, object]]:
        """The carrier cell registry as plain records (what a detector is given)."""
        return [
            {
                "cell_id": c.decode(),
                "operator": CARRIERS[o],
                "lac": int(lac),
                "lat": la / MICRO,
                "lon": lo / MICRO,
                "district": DISTRICTS[d][0],
            }
            for c, o, lac, la, lo, d in zip(
                self.cell_id.tolist(),
                self.operator.tolist(),
                self.lac.tolist(),
                self.lat_u.tolist(),
                self.lon_u.tolist(),
                self.district.tolist(),
            )
        ]


@dataclass(frozen=True)
class People:
    id_number: np.ndarray
    name: np.ndarray
    phone: np.ndarray
    carrier: np.ndarray
    imei: np.ndarray
    account: np.ndarray
    bank: np.ndarray
    balance: np.ndarray
    """Savings in fen: what a victim can lose."""
    district: np.ndarray
    home_cell: np.ndarray
    work_cell: np.ndarray
    activity: np.ndarray
    """Cumulative, normalised activity weights (who calls and pays a lot)."""

    def __len__(self) -> int:
        return len(self.id_number)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """People drawn by activity (a few busy, most quiet)."""
        return np.minimum(np.searchsorted(self.activity, rng.random(n)), len(self) - 1)


@dataclass(frozen=True)
class Merchants:
    account: np.ndarray
    name: np.ndarray
    popularity: np.ndarray
    """Cumulative, normalised."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.popularity, rng.random(n)), len(self.account) - 1)


@dataclass(frozen=True)
class City:
    people: People
    contacts: Groups
    """Each person's circle; the first two of a circle are family."""
    merchants: Merchants
    cells: Cells
    cells_by_area: Groups
    """Cells grouped by ``operator * len(DISTRICTS) + district``."""
    bank_codes: np.ndarray
    branch_id: np.ndarray
    branches_by_bank: Groups
    atm_id: np.ndarray
    atms_by_bank: Groups
    outlets_by_carrier: Groups
    outlet_id: np.ndarray
    service_number: np.ndarray
    service_domain: np.ndarray
    ids: Identities

    def area(self, operator: np.ndarray, district: np.ndarray) -> np.ndarray:
        return operator * len(DISTRICTS) + district

    def unregistered_cell(self, rng: np.random.Generator, operator: int, district: int) -> tuple[bytes, int]:
        """A well-formed cell id of the operator in one of the district's LACs that no registered cell has."""
        local = np.flatnonzero((self.cells.operator == operator) & (self.cells.district == district))
        lac = int(self.cells.lac[rng.choice(local)])
        known = set(self.cells.cell_id.tolist())
        while (cell_id := f"460-{MNC[operator]}-{lac}-{int(rng.integers(10000, 65536))}".encode()) in known:
            pass
        return cell_id, lac


def _cells(rng: np.random.Generator, per_area: int) -> Cells:
    n_areas = len(CARRIERS) * len(DISTRICTS)
    area = np.repeat(np.arange(n_areas), per_area)
    operator, district = area // len(DISTRICTS), area % len(DISTRICTS)
    centre = np.array([(d[1], d[2]) for d in DISTRICTS])[district]
    lat_u = np.round((centre[:, 0] + rng.normal(0, 0.012, len(area))) * MICRO).astype(np.int64)
    lon_u = np.round((centre[:, 1] + rng.normal(0, 0.014, len(area))) * MICRO).astype(np.int64)
    lac = 20000 + operator * 1000 + district * 10 + (np.arange(len(area)) % per_area) // 40
    ci = np.concatenate(
        [rng.choice(np.arange(10000, 65536), per_area * len(DISTRICTS), replace=False) for _ in CARRIERS]
    )
    mnc = np.array([m.encode() for m in MNC])[operator]
    cell_id = concat(b"460-", mnc, b"-", lac.astype("S5"), b"-", ci.astype("S5"))
    encryption = np.where(rng.random(len(area)) < 0.7, 3, 2).astype(np.int64)
    return Cells(
        cell_id, operator.astype(np.int64), lac.astype(np.int64), lat_u, lon_u, district.astype(np.int64), encryption
    )


def _contacts(rng: np.random.Generator, district: np.ndarray) -> Groups:
    """Heavy-tailed circles, mostly within one's own town; the first two are family (same town)."""
    n = len(district)
    degree = np.minimum(3 + (rng.pareto(1.6, n) * 5).astype(np.int64), 300)
    owner = np.repeat(np.arange(n), degree)
    by_district = Groups.of(district, len(DISTRICTS))
    local = by_district.pick(rng, district[owner])
    anywhere = rng.integers(0, n, len(owner))
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(degree) - degree, degree)
    contact = np.where((rank < 2) | (rng.random(len(owner)) < 0.75), local, anywhere)
    contact = np.where(contact == owner, (contact + 1) % n, contact)
    return Groups(np.concatenate([[0], np.cumsum(degree)]).astype(np.int64), contact.astype(np.int64))


def _codes(prefix: bytes, owner_code: np.ndarray, width: int) -> np.ndarray:
    """Ids like ``br-icbc-007``: a prefix, the owner's code and a serial within the owner."""
    serial = np.zeros(len(owner_code), dtype=np.int64)
    for code in np.unique(owner_code):
        rows = owner_code == code
        serial[rows] = np.arange(1, rows.sum() + 1)
    return concat(prefix, owner_code, b"-", as_strings(digits(serial, width)))


def build_city(rng: np.random.Generator, people: int) -> City:
    """A city of ``people`` residents with everything they use."""
    if people < 100:
        raise ValueError("a city needs at least 100 people")
    ids = Identities()
    n = people
    district = rng.choice(len(DISTRICTS), n, p=np.array([d[3] for d in DISTRICTS]))
    carrier = rng.choice(len(CARRIERS), n, p=CARRIER_SHARE)
    bank = rng.choice(len(BANKS), n, p=BANK_SHARE)
    regions = (TAICANG, *SUZHOU_REGIONS)
    region_share = np.array([0.82] + [0.18 / len(SUZHOU_REGIONS)] * len(SUZHOU_REGIONS))
    id_number = ids.id_numbers.take(lambda k: id_numbers(rng, k, regions, region_share), n)
    cells = _cells(rng, per_area=max(2, min(60, n // 400)))
    by_area = Groups.of(cells.operator * len(DISTRICTS) + cells.district, len(CARRIERS) * len(DISTRICTS))
    work_district = np.where(rng.random(n) < 0.6, district, rng.choice(len(DISTRICTS), n))
    activity = rng.lognormal(0.0, 0.8, n)
    contacts = _contacts(rng, district)
    activity = activity * (1 + contacts.size(np.arange(n)) / 20)
    residents = People(
        id_number=id_number,
        name=names(rng, n),
        phone=ids.new_phones(rng, carrier),
        carrier=carrier.astype(np.int64),
        imei=ids.new_imeis(rng, n),
        account=ids.new_accounts(rng, bank),
        bank=bank.astype(np.int64),
        balance=np.round(rng.lognormal(np.log(3_000_000), 1.1, n)).astype(np.int64) + 10_000,
        district=district.astype(np.int64),
        home_cell=by_area.pick(rng, carrier * len(DISTRICTS) + district),
        work_cell=by_area.pick(rng, carrier * len(DISTRICTS) + work_district),
        activity=np.cumsum(activity) / activity.sum(),
    )
    n_merchants = max(30, n // 40)
    merchant_bank = rng.choice(len(BANKS), n_merchants, p=BANK_SHARE)
    kinds = np.array([k.encode() for k in MERCHANT_KINDS])
    popularity = 1.0 / np.arange(1, n_merchants + 1) ** 0.8
    merchants = Merchants(
        account=ids.new_accounts(rng, merchant_bank),
        name=concat("太仓市".encode(), names(rng, n_merchants), kinds[rng.integers(0, len(kinds), n_merchants)]),
        popularity=np.cumsum(popularity) / popularity.sum(),
    )
    bank_codes = np.array([b.code.encode() for b in BANKS])
    branch_bank = np.repeat(np.arange(len(BANKS)), max(2, min(30, n // 3000)))
    atm_bank = np.repeat(np.arange(len(BANKS)), max(3, min(80, n // 1000)))
    outlet_carrier = np.repeat(np.arange(len(CARRIERS)), max(2, min(40, n // 2000)))
    carrier_codes = np.array([c.encode() for c in CARRIERS])
    return City(
        people=residents,
        contacts=contacts,
        merchants=merchants,
        cells=cells,
        cells_by_area=by_area,
        bank_codes=bank_codes,
        branch_id=_codes(b"br-", bank_codes[branch_bank], 3),
        branches_by_bank=Groups.of(branch_bank, len(BANKS)),
        atm_id=_codes(b"atm-", bank_codes[atm_bank], 4),
        atms_by_bank=Groups.of(atm_bank, len(BANKS)),
        outlet_id=_codes(b"out-", carrier_codes[outlet_carrier], 3),
        outlets_by_carrier=Groups.of(outlet_carrier, len(CARRIERS)),
        service_number=np.array([s[0].encode() for s in SERVICES]),
        service_domain=np.array([s[1].encode() for s in SERVICES]),
        ids=ids,
    )
