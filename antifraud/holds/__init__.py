"""The 24-hour ATM hold (plan (一)1 item 10): which transfers are held, the hold's states, its ledger."""
