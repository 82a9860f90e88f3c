"""Every Redis key family: its type, who writes it, how long it lives, and its value format. Stores and
services build keys through these (``FAMILY.key(entity)``) and hand them to scripts in ``KEYS``; nobody
else spells them (``tests/test_redis_keys.py`` finds every key a full run leaves in one of them).

"Owned" families have one writer: the worker that owns the entity's input partition
(``antifraud/state/store.py``). "Facts" are added by any worker and read a fixed delay later.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyFamily:
    prefix: str
    type: str
    writer: str
    retention: str
    value: str

    suffix: str = ""
    """After the entity, for a family of keys that hang off another's (``case:{id}:alerts``)."""

    def key(self, entity: str = "") -> str:
        return self.prefix + entity + self.suffix

    def holds(self, key: str) -> bool:
        """Whether ``key`` is one of this family's."""
        exact = not self.prefix.endswith(":") and not self.suffix
        if exact:
            return key == self.prefix
        return key.startswith(self.prefix) and key.endswith(self.suffix) and len(key) > len(self.prefix + self.suffix)


# -- the stream loop's own bookkeeping --------------------------------------------------------------

STREAM_OFFSETS = KeyFamily(
    "stream:offsets",
    "hash",
    "the checkpoint",
    "kept",
    "'{topic}:{partition}' -> the next offset to process: the offsets that count (Kafka's are for lag)",
)
STREAM_OWNERS = KeyFamily(
    "stream:owners",
    "hash",
    "the loop, on assignment",
    "kept",
    "'{topic}:{partition}' -> the token of the worker that owns it now; a checkpoint of anyone else fails",
)
STREAM_WATERMARKS = KeyFamily(
    "stream:watermarks",
    "hash",
    "the checkpoint",
    "kept",
    "'{topic}:{partition}' -> event time (epoch s) below which everything of the partition is processed",
)
STREAM_NEWEST = KeyFamily(
    "stream:newest",
    "hash",
    "the checkpoint",
    "kept",
    "'{topic}:{partition}' -> the newest event time processed: where an idle stream's timers stop",
)
STREAM_WAKE = KeyFamily(
    "stream:wake", "pub/sub channel", "the checkpoint", "-", "published after a checkpoint moved watermarks"
)
TIMERS = KeyFamily(
    "timers:",
    "zset per '{topic}:{partition}'",
    "any stage (a message) or the owner (its own timers)",
    "until run",
    "score: due event time; member: timer_id \\x1f kind \\x1f key \\x1f data",
)

# -- owned state ------------------------------------------------------------------------------------

FRAUD_NUMBER_CALLS = KeyFamily(
    "fn:kept:",
    "zset",
    "call-records owner of the caller",
    "2 profile windows after the last write",
    "the kept outbound calls (antifraud/state/kept.py): member 'event_id \\x1f callee \\x1f duration \\x1f "
    "international \\x1f imei'; score: the call's time",
)
FRAUD_NUMBER_QUIET = KeyFamily(
    "fn:quiet:",
    "string",
    "call-records owner of the caller",
    "2 profile windows",
    "epoch until which the number gets no new alert",
)
WARNED = KeyFamily(
    "iv:warned:",
    "set",
    "call-records owner of the number",
    "2 profile windows",
    "victims already warned about the number (the per-number cap)",
)
WINDOWS_SIM = KeyFamily(
    "simreg:",
    "hash",
    "sim-registrations owner of the ID number",
    "history_days",
    "'{group}:{key}' -> 'epoch \\x1f event_id \\x1f detail', and alerted_until",
)
WINDOWS_CARD = KeyFamily("cardopen:", "hash", "card-openings owner of the ID number", "history_days", "as simreg:")
WINDOWS_PHISHING = KeyFamily("phish:", "hash", "sms-records owner of the sender", "2 windows", "as simreg:")
WINDOWS_CELL = KeyFamily("fbs:", "hash", "cell-observations owner of the cell", "2 windows", "as simreg:")
WINDOWS_CARD_TRADE = KeyFamily(
    "cardtrade:", "hash", "bank-transfers owner of the new account", "2 x new_account_days", "as simreg:"
)
PAYEE_HOLDS = KeyFamily(
    "hpay:",
    "hash",
    "bank-transfers owner of the payee account",
    "2 hold periods",
    "'h:{hold_id}' -> the held hold paying the account (JSON); 'f:{alert_id}' -> a flag on it (JSON)",
)
TRANSFER_OUT = KeyFamily(
    "tr:outflows:",
    "zset",
    "bank-transfers owner of the payer",
    "history_days",
    "the payer's kept outflows (antifraud/state/kept.py): member 'event_id \\x1f payee \\x1f amount \\x1f "
    "channel \\x1f own'; score: the transfer's time",
)
TRANSFER_QUIET = KeyFamily(
    "tr:quiet:",
    "string",
    "bank-transfers owner of the account",
    "history_days",
    "epoch until which the account gets no new mule alert",
)

# -- facts ------------------------------------------------------------------------------------------

CALLED_BY = KeyFamily(
    "fn:in:",
    "zset",
    "call-records owner of each caller",
    "2 profile windows",
    "member: a caller; score: its earliest call to the number",
)
REACHED = KeyFamily(
    "iv:reached:",
    "zset",
    "call-records owner of a listed or flagged number",
    "2 profile windows",
    "member: 'number \\x1f duration \\x1f call event_id'; score: the call's end",
)
INFLOWS = KeyFamily(
    "tr:in:",
    "zset",
    "bank-transfers owner of each payer",
    "the fan-in window",
    "member: 'event_id \\x1f payer \\x1f amount \\x1f channel \\x1f own'; score: the transfer's time",
)
FLAGS = KeyFamily(
    "flag:",
    "zset",
    "the stage raising an alert on an account",
    "history_days",
    "member: 'alert_id \\x1f detector \\x1f score \\x1f until'; score: the alert's time",
)
OPENED = KeyFamily(
    "acct:",
    "zset",
    "card-openings owner of the holder",
    "account registry horizon",
    "member: 'holder \\x1f bank \\x1f branch \\x1f event_id'; score: the opening's time",
)
BULK_OPENERS = KeyFamily(
    "bulkopener:",
    "zset",
    "card-openings owner of the ID number",
    "card opening history_days",
    "member: 'flagged'; score: the first bulk-opening alert's time",
)
TRAIL = KeyFamily(
    "trail:out:",
    "zset",
    "bank-transfers owner of the payer",
    "index_hours",
    "member: 'event_id \\x1f payee \\x1f amount \\x1f held'; score: the transfer's time",
)

# -- external (written by people and the web app, read by stages) -----------------------------------

BLACKLIST = KeyFamily(
    "blacklist:accounts", "set", "the credit blacklist service", "while listed", "accounts on the credit blacklist"
)
BLOCKLIST = KeyFamily("blocklist", "hash", "antifraud blocklist, confirmed cases", "kept", "number -> BlockEntry JSON")

# -- the web app ------------------------------------------------------------------------------------

WEB_SESSION = KeyFamily(
    "websession:",
    "hash",
    "the web app, at login; deleted at logout",
    "the idle timeout from the last use (the absolute timeout is checked on every read)",
    "HMAC of the cookie's session id -> name, csrf (the session's CSRF token), created and seen (epoch s)",
)
WEB_ACCOUNT = KeyFamily(
    "webuser:",
    "hash",
    "antifraud users (audited)",
    "kept (disabled, never deleted: the audit names it)",
    "user name -> role, branch_id, active ('1'/'0'), created_at, password (an Argon2id hash)",
)
WARNING_HANDLING = KeyFamily(
    "warninghandling:",
    "hash",
    "the web app: a teller marking a warning seen or handled, or escalating it",
    "WARNING_HANDLING_DAYS (7) from the place's last mark",
    "place -> alert id -> JSON Handling (state seen | handled | escalated, by, at, case_id): shared by every "
    "web process, kept across restarts",
)
RECENT_WARNINGS = KeyFamily(
    "recentwarnings:",
    "hash",
    "the web app, for each alert it reads from the alerts topic (every process writes the same entries)",
    "the last RECENT_PER_PLACE (50) per place as first read; WARNING_HANDLING_DAYS (7) from the last",
    "'{place}' (hash-tagged, one slot with its order) -> alert id -> JSON CounterWarning: what a counter "
    "page shows on opening, on any web process and after a restart",
)
RECENT_WARNING_ORDER = KeyFamily(
    "recentwarnorder:",
    "sorted set",
    "with RECENT_WARNINGS, in one script",
    "as RECENT_WARNINGS",
    "'{place}' -> alert id scored by when a web process first read it (epoch seconds): newest last",
)
WEB_ACCOUNTS = KeyFamily("webusers", "set", "antifraud users add", "kept", "every account's user name")
LOGIN_FAILURES = KeyFamily(
    "loginfail:",
    "string (counter)",
    "the web app, on a refused login",
    "the throttling window from the first failure",
    "'addr:{address}' or 'name:{user name}' -> refused logins in the window; at the limit, logins from that "
    "address, or to that account, get 429",
)


# -- the hold ledger (antifraud/holds/service.py) ----------------------------------------------------

HOLD = KeyFamily(
    "hold:",
    "hash",
    "the hold stage (created, released by event time), people's moves, the wall-clock release",
    "settled: [holds] retain_days after settling",
    "hold id -> state (the truth), doc (the hold as created, JSON, never rewritten), due (epoch)",
)
HOLDS_DUE = KeyFamily("holds:due", "sorted set", "as HOLD", "while held", "the held holds by due epoch")
HOLDS_IN_STATE = KeyFamily(
    "holds:state:", "sorted set", "as HOLD", "released: trimmed retain_days after due", "state -> hold ids by due"
)
HOLDS_COUNT = KeyFamily(
    "holds:count", "hash", "as HOLD", "kept", "state -> holds in it (settled states: that ever settled so)"
)
HOLDS_WATERMARK = KeyFamily(
    "holds:watermark",
    "string",
    "the hold stage (a batch's bound), the wall-clock release (now - lag)",
    "kept",
    "the ledger's clock, epoch seconds, only raised",
)
HOLDS_BY_ACCOUNT = KeyFamily(
    "holds:account:",
    "set",
    "as HOLD",
    "retain_days plus twice the hold period after the account's newest hold",
    "account -> ids of the holds it paid or was paid by (a case's holds)",
)

# -- cases (antifraud/case/service.py), their deliveries and follow-ups ---------------------------------

CASE = KeyFamily(
    "case:",
    "string",
    "the alerts agent (folding alerts), analysts' and tellers' actions",
    "ANTIFRAUD_CASE_RETAIN_DAYS after it is closed or dismissed",
    "case id -> the case (JSON), rewritten with each version",
)
CASE_ALERTS = KeyFamily("case:", "hash", "as CASE", "as CASE", "alert id -> alert JSON", suffix=":alerts")
CASE_NOTES = KeyFamily("case:", "list", "analysts", "as CASE", "note JSON, oldest first", suffix=":notes")
CASES_SEEN = KeyFamily("cases:seen", "sorted set", "as CASE", "as CASE", "case id by its alerts' latest event time")
CASES_STATUS = KeyFamily("cases:status", "hash", "as CASE", "as CASE", "case id -> status (counts by state)")
CASES_ESCALATED = KeyFamily(
    "cases:escalated", "sorted set", "tellers escalating", "as CASE", "case id by its latest escalation"
)
CASES_ENDED = KeyFamily(
    "cases:ended", "sorted set", "as CASE", "as CASE", "case id by when it was closed or dismissed (the sweep's queue)"
)
DELIVERY = KeyFamily(
    "delivery:",
    "hash",
    "confirming or forwarding a case; the delivery loop",
    "as its case",
    "delivery id -> doc (the Delivery, JSON), payload (the package, sent byte for byte)",
)
DELIVERIES_DUE = KeyFamily("deliveries:due", "sorted set", "as DELIVERY", "while pending", "ids by next attempt")
DELIVERIES_OF_CASE = KeyFamily("deliveries:case:", "set", "as DELIVERY", "as its case", "case id -> delivery ids")
FOLLOWUP = KeyFamily(
    "followup:",
    "hash",
    "confirming a case; the follow-up runner",
    "as its case",
    "follow-up id -> doc (the FollowUp, JSON)",
)
FOLLOWUPS_DUE = KeyFamily("followups:due", "sorted set", "as FOLLOWUP", "while pending", "ids by next attempt")
FOLLOWUPS_OF_CASE = KeyFamily("followups:case:", "set", "as FOLLOWUP", "as its case", "case id -> follow-up ids")

# -- the credit blacklist (antifraud/credit/service.py) -----------------------------------------------

LISTING = KeyFamily(
    "credit:listing:",
    "string",
    "credit officers, confirmed cases' follow-ups, the expiry sweep",
    "ended: [credit_blacklist] keep_ended_years after it ended",
    "listing id -> the listing (JSON), the truth",
)
LISTINGS_NAMING = KeyFamily(
    "credit:by:",
    "set",
    "as LISTING",
    "as its listings",
    "'{kind}:{value}' (id_number, credit_code, account, phone) -> the ids of the listings naming it, ended too",
)
LISTINGS = KeyFamily("credit:listings", "sorted set", "as LISTING", "as LISTING", "every listing id by listing time")
LISTINGS_EXPIRY = KeyFamily(
    "credit:expiry", "sorted set", "as LISTING", "while in force", "listings in force by expiry (the sweep's queue)"
)
LISTINGS_OBJECTED = KeyFamily(
    "credit:objected", "sorted set", "as LISTING", "while objected", "listings with an objection pending, by filing"
)
LISTINGS_ENDED = KeyFamily(
    "credit:ended", "sorted set", "as LISTING", "as LISTING", "ended listings by when they ended (the purge's queue)"
)
PROPOSAL = KeyFamily(
    "credit:proposal:", "string", "credit officers", "until approved", "proposal id -> the draft listing (JSON)"
)
PROPOSALS = KeyFamily("credit:proposals", "sorted set", "credit officers", "as PROPOSAL", "proposal ids by when made")

# -- the audit log (antifraud/audit/service.py) and the outbox (antifraud/outbox.py) --------------------

AUDIT_LOG = KeyFamily(
    "audit:log",
    "list",
    "the audit sealer",
    "ANTIFRAUD_AUDIT_RETAIN_DAYS, then archived",
    "the live records' JSON, chained by HMAC, oldest first",
)
AUDIT_BASE = KeyFamily("audit:base", "string", "the audit archiver", "kept", "'{first live seq} {hash it links to}'")
AUDIT_HEAD = KeyFamily("audit:head", "string", "the audit sealer", "kept", "'{seq} {hash}' of the last record")
AUDIT_IDS = KeyFamily(
    "audit:ids", "hash", "the audit sealer", "as AUDIT_LOG", "event id -> seq ('q' while queued): chained once"
)
AUDIT_SUBJECT = KeyFamily(
    "audit:subject:", "list", "the audit sealer", "as AUDIT_LOG", "subject (hold:, case:, listing:...) -> live seqs"
)
AUDIT_ARCHIVES = KeyFamily("audit:archives", "list", "the audit archiver", "kept", "segments written (JSON)")
AUDIT_ARCHIVE_LOCK = KeyFamily(
    "audit:archive:lock", "string", "the audit archiver", "the run's lease", "one archive run at a time"
)
AUDIT_INBOX = KeyFamily(
    "audit:inbox", "stream", "every audited writer, in its own MULTI", "until sealed", "entries queued, not chained"
)
OUTBOX = KeyFamily(
    "outbox",
    "stream",
    "every human action, in its own MULTI",
    "until the relay's broker acks",
    "topic, key, value: records to publish",
)
OUTBOX_LOCK = KeyFamily("outbox:relay", "string", "the outbox relay", "the round's lease", "one relay at a time")


def families() -> list[KeyFamily]:
    """Every family named here."""
    return [value for value in globals().values() if isinstance(value, KeyFamily)]


def family_of(key: str) -> KeyFamily | None:
    """The family ``key`` belongs to (the longest prefix that holds it), or None: a key nobody named."""
    found = [family for family in families() if family.holds(key)]
    return max(found, key=lambda f: len(f.prefix + f.suffix)) if found else None
