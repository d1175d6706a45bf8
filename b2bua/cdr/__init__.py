"""Call records (DESIGN section 5): batched durable writer, hash chain, export, webhooks.

The wiring uses :class:`~b2bua.cdr.service.CdrService` (import it from
``b2bua.cdr.service``); this package module stays empty of imports so that the
store can use :mod:`b2bua.cdr.record` without a cycle.
"""
