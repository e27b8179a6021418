"""vochi-crm core library: the RetailCRM integration of the Vochi telephony platform.

Nothing is built at import time: the composition root is :mod:`vochi_crm.runtime`.
"""

__version__ = "0.1.0"
