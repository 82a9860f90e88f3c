"""Forwarding of confirmed cases to police, carriers and banks: packages, tracked deliveries, retries."""
