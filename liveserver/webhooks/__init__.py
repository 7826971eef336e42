"""Signed webhooks for merchants' systems: subscriptions (API), producers (`emit`), and the
delivery worker (relay of the orders streams, fan-out, attempts with backoff, dead letters)."""
