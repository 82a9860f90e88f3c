"""Redis key families of the stream path: each with its type, who writes it, how long it lives, and its
value format. Stores build keys through these (``FAMILY.key(entity)``) and hand them to scripts in
``KEYS``; nobody else spells them.

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

    def key(self, entity: str = "") -> str:
        return self.prefix + entity


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
    "the last RECENT_PER_PLACE (50) per place by event time; WARNING_HANDLING_DAYS (7) from the last",
    "'{place}' (hash-tagged, one slot with its order) -> alert id -> JSON CounterWarning: what a counter "
    "page shows on opening, on any web process and after a restart",
)
RECENT_WARNING_ORDER = KeyFamily(
    "recentwarnorder:",
    "sorted set",
    "with RECENT_WARNINGS, in one script",
    "as RECENT_WARNINGS",
    "'{place}' -> alert id scored by the alert's event time (window_end, epoch seconds): newest last",
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
