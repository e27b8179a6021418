"""Delivery of queued call events to RetailCRM (DESIGN §4 "Delivery").

``store`` is the queue's SQL, ``accounts`` the per-account client, rate limiter and breaker,
``worker`` the handling of one event, ``dispatcher`` the elected loop that runs them.
"""
