"""Phishing SMS: senders spreading links to listed or look-alike bank and government sites.

Phishing texts imitate an official domain closely enough to pass a glance:
a swapped look-alike character (1cbc.com.cn, b0c.cn, crnbchina.com), one typo
(ccbb.com), the brand inside another domain (icbc-verify.top), or Unicode
look-alikes behind punycode (xn--...). A domain is judged once against the
configured official domains (genuine, with their subdomains) and listed
phishing domains; a sender is flagged when its texts with such links reach
``min_receivers`` distinct receivers within ``window_seconds`` (a campaign,
not one forwarded link), then is quiet for the window.

Replay safety: state is keyed by receiver (the latest phishing text to each),
alert windows are anchored on the text that crossed the limit.
"""

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import idna

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import SmsRecord
from antifraud.thresholds import PhishingSmsThresholds
from detectors.window import EntityState, Seen, WindowResult, result_of, trackers

DETECTOR = "phishing_sms"
MAX_EVIDENCE = 50
_RECEIVERS = "r"
_CONFUSABLE = str.maketrans("асеіјорѕхуԁһӏɡոαορτυνı", "aceijopsxydhlgnaoptuvi")
"""Cyrillic, Armenian and Greek letters that look like Latin ones (the usual punycode spoofs)."""
_FOLD = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"))
"""Characters that read alike, folded to one spelling before domains are compared."""


@dataclass(frozen=True)
class Verdict:
    """Why a domain is phishing: ``how`` (listed, look-alike, typo, brand, punycode), the official
    domain it imitates, and the edits between their folded spellings."""

    how: str
    imitates: str
    edits: int


def edits(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (adjacent swaps count once), or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        before, row = row, current
    return min(row[-1], limit + 1)


def fold(domain: str) -> str:
    """The domain as it reads: Unicode look-alikes to ASCII, then look-alike characters to one spelling."""
    text = unicodedata.normalize("NFKD", domain)
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_CONFUSABLE)
    for glyph, letter in _FOLD:
        text = text.replace(glyph, letter)
    return text


def _decode(domain: str) -> tuple[str, bool]:
    """The lower-cased host name with punycode labels decoded, and whether any was."""
    name = domain.strip().rstrip(".").lower()
    if "xn--" not in name:
        return name, False
    try:
        return idna.decode(name), True
    except idna.IDNAError:
        return name, True


def _under(name: str, domains: Sequence[str]) -> str | None:
    """The domain of ``domains`` that ``name`` is or is a subdomain of."""
    return next((d for d in domains if name == d or name.endswith("." + d)), None)


class DomainJudge:
    """Judges host names against official and listed domains; each name is judged once."""

    def __init__(self, limits: PhishingSmsThresholds) -> None:
        self.official = [d.lower() for d in limits.official_domains]
        self.listed = [d.lower() for d in limits.listed_domains]
        self.folded = [(fold(d), d) for d in self.official]
        self.brands = sorted({d.split(".")[0] for d in self.official})
        self.max_edits = limits.max_edits
        self.min_brand_length = limits.min_brand_length
        self.judge = lru_cache(maxsize=100_000)(self._judge)

    def _judge(self, domain: str) -> Verdict | None:
        name, punycode = _decode(domain)
        listed = _under(name, self.listed)
        if listed is not None:
            return Verdict("listed", listed, 0)
        if _under(name, self.official) is not None:
            return None
        folded = fold(name)
        for official_folded, official in self.folded:
            distance = edits(folded, official_folded, self.max_edits)
            if distance <= self.max_edits:
                how = "punycode" if punycode else "look-alike" if distance == 0 else "typo"
                return Verdict(how, official, distance)
        words = set(folded.replace(".", "-").split("-"))
        for brand in self.brands:
            folded_brand = fold(brand)
            inside = folded_brand in folded if len(brand) >= self.min_brand_length else folded_brand in words
            if inside:
                return Verdict("brand", next(d for d in self.official if d.split(".")[0] == brand), 0)
        return None

    def phishing_link(self, sms: SmsRecord) -> tuple[str, Verdict] | None:
        """The first link of the text that is phishing, with the verdict."""
        for domain in sms.link_domains:
            verdict = self.judge(domain)
            if verdict is not None:
                return domain, verdict
        return None


def _alert(
    sender: str,
    reached: Mapping[str, Seen],
    now: float,
    judge: DomainJudge,
    limits: PhishingSmsThresholds,
    trigger: str,
) -> Alert:
    window_end = datetime.fromtimestamp(now, timezone.utc)
    texts = sorted(reached.values())
    reasons = [
        Reason(
            feature=f"phishing_receivers_{limits.window_seconds}s", value=len(reached), threshold=limits.min_receivers
        )
    ]
    verdicts = {domain: judge.judge(domain) for domain in sorted({s.detail for s in texts})}
    for domain, verdict in [(d, v) for d, v in verdicts.items() if v is not None][:5]:
        reasons.append(
            Reason(
                feature=f"link {domain} {verdict.how} of {verdict.imitates}",
                value=verdict.edits,
                threshold=limits.max_edits,
            )
        )
    return Alert.create(
        detector=DETECTOR,
        entity=Entity(kind="phone", value=sender),
        trigger=trigger,
        window_start=window_end - timedelta(seconds=limits.window_seconds),
        window_end=window_end,
        severity="high" if len(reached) >= 2 * limits.min_receivers else "medium",
        score=round(len(reached) / limits.min_receivers, 4),
        reasons=reasons,
        evidence_event_ids=[s.event_id for s in texts[-MAX_EVIDENCE:]],
        audience=[Audience(kind="police")],
    )


def detect(
    texts: Sequence[SmsRecord],
    prior: Mapping[str, EntityState],
    judge: DomainJudge,
    limits: PhishingSmsThresholds,
) -> WindowResult:
    """Fold a batch of SMS (any order) into per-sender receivers of phishing links; alert on crossings."""
    phishing = [(sms, link) for sms in texts if sms.link_domains and (link := judge.phishing_link(sms))]
    tracked = trackers(
        {sms.sender for sms, _ in phishing}, prior, {_RECEIVERS: limits.window_seconds}, limits.max_tracked
    )
    alerts: list[Alert] = []
    for sms, (domain, _) in sorted(phishing, key=lambda p: (p[0].event_time, p[0].event_id)):
        tracker = tracked[sms.sender]
        now = sms.event_time.timestamp()
        tracker.see(_RECEIVERS, sms.receiver, Seen(now, sms.event_id, domain))
        tracker.expire(now)
        reached = tracker.upto(_RECEIVERS, now)
        if len(reached) >= limits.min_receivers and not tracker.quiet(now):
            tracker.alerted(now + limits.window_seconds)
            alerts.append(_alert(sms.sender, reached, now, judge, limits, sms.event_id))
    return result_of(alerts, tracked)
