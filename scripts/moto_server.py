"""Start moto's server for the tests, with two fixes to its DynamoDB backend.

Isolation: moto's server answers requests on many threads, and its DynamoDB backend has no
locking, so two concurrent transactions can interleave (one checks a condition, the other writes,
the first writes on stale state). Real DynamoDB runs each request atomically and transactions
serializably; this wrapper gives moto the same guarantee by running every DynamoDB backend call
under one lock.

Speed: moto's `transact_write_items` snapshots a table for rollback once per action, so a 100-action
transaction deep-copies the whole table 100 times: with the 10,000-response exactness proof that
is minutes per batch. All those snapshots are taken before any action runs, so they are
identical; this wrapper makes the repeated copies of one table within one transaction return the
first copy. What moto accepts, rejects and rolls back is unchanged.

Memory: moto's models record every instance they create (`instances_tracked`); the tracked DynamoDB
items and tables are dropped after each call, so the rollback copies do not accumulate.

Model dump: `/moto-api/data.json` (where the tests read the emails moto's SES "sent") answers 500
as soon as any model in the process has an attribute whose getter raises something other than a
serialisation error: a Lambda function's asks for Docker, which is not here. This wrapper leaves
such attributes out, as moto already does for attributes that are not JSON.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT
"""

import copy
import sys
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.dynamo_type import Item
from moto.dynamodb.models.table import Table
from moto.moto_api._internal.responses import MotoAPIResponse
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

_lock = threading.RLock()


def _serialized(method):
    def call(self, *args, **kwargs):
        with _lock:
            try:
                return method(self, *args, **kwargs)
            finally:
                # moto's BaseModel keeps every model object it ever created, so each transaction's
                # rollback copy of a table would stay in memory for good (tens of GB in a long run).
                Item.instances_tracked.clear()
                Table.instances_tracked.clear()

    call.__name__ = method.__name__
    return call


for _name in [
    "transact_write_items",
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "batch_get_item",
    "query",
    "scan",
    "batch_write_item",
    "transact_get_items",
]:
    if hasattr(dynamodb_models.DynamoDBBackend, _name):
        setattr(
            dynamodb_models.DynamoDBBackend,
            _name,
            _serialized(getattr(dynamodb_models.DynamoDBBackend, _name)),
        )

def _model_data(self, request, full_url, headers):
    import json

    from moto.core.model_instances import model_data

    results = {}
    for service in sorted(model_data):
        results[service] = {}
        for name in sorted(model_data[service]):
            results[service][name] = []
            for instance in model_data[service][name].instances_tracked:
                fields = {}
                for attr in dir(instance):
                    if attr.startswith("_"):
                        continue
                    try:
                        value = getattr(instance, attr)
                        json.dumps(value)
                    except Exception:  # noqa: BLE001 - any getter may fail: leave it out
                        continue
                    fields[attr] = value
                results[service][name].append(fields)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


MotoAPIResponse.model_data = _model_data
# The URL table binds the method when it is imported: point its entry at the patched one.
import moto.moto_api._internal.urls as _moto_api_urls  # noqa: E402

_moto_api_urls.url_paths["{0}/moto-api/data.json"] = _moto_api_urls.response_instance.model_data

if __name__ == "__main__":
    main(sys.argv[1:])
