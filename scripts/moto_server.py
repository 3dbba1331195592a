"""Start moto's server for the tests, with one performance fix for DynamoDB transactions.

moto's `transact_write_items` snapshots a table for rollback once per action, so a 100-action
transaction deep-copies the whole table 100 times: with the 10,000-response exactness proof that
is minutes per batch. All those snapshots are taken before any action runs, so they are
identical; this wrapper makes the repeated copies of one table within one transaction return the
first copy. What moto accepts, rejects and rolls back is unchanged.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.server import main

_local = threading.local()


def _deepcopy(obj, memo=None):
    snapshots = getattr(_local, "snapshots", None)
    if snapshots is not None and isinstance(obj, Table):
        key = id(obj)
        if key not in snapshots:
            snapshots[key] = copy.deepcopy(obj, memo)
        return snapshots[key]
    return copy.deepcopy(obj, memo)


dynamodb_models.copy = types.SimpleNamespace(**{**copy.__dict__, "deepcopy": _deepcopy})
_original = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    _local.snapshots = {}
    try:
        return _original(self, transact_items)
    finally:
        _local.snapshots = None


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items

if __name__ == "__main__":
    main(sys.argv[1:])
