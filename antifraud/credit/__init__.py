"""The credit blacklist (plan sections (二) and (三)): listings, objections, correction, repair, expiry."""
