"""Our telephony integration module in RetailCRM (reference A6): register, update, deactivate.

* :mod:`~vochi_crm.registration.module` — the pure part: the module body, when a config write
  calls for a (de)registration, the ``clientId``;
* :mod:`~vochi_crm.registration.hook` — queues a ``register_module``/``delete_module`` event in
  the config write's own transaction (plugged into ``ConfigService``);
* :mod:`~vochi_crm.registration.delivery` — the dispatcher's handling of those events;
* :mod:`~vochi_crm.registration.service` — ``vochi-crm register UNIT``, synchronously;
* :mod:`~vochi_crm.registration.problems` — the hints shown when RetailCRM refuses.

Nothing is imported here: the delivery worker imports ``module`` and must not pull in the rest
(which imports the worker).
"""
