"""The backfill: historic conversions from files, through the same mapping and delivery core as the webhook.

A *source* in front of the delivery core (forwarder/delivery.py), as the webhook, the buffered sender and
replay are: `python -m forwarder.backfill` (__main__.py) and the stack's backfill function
(handler/backfill.py) run the same code. Files are read as streams (files.py, readers.py; CSV rows become
mParticle batches in csv_rows.py), gathered into requests of up to the API's size and sent (gathering.py,
run.py), each row reported (report.py) and checkpointed (checkpoint.py) so a rerun sends nothing twice.
Reference: docs/backfill.md.
"""
