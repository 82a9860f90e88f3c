"""The audit trail: every human or automatic action on holds, cases and listings, hash-chained."""
