"""The data pool (数据资源池): encrypted SQLite store, ingestion (归集) and demo seeder."""

from gateway.pool.ingest import IngestReport, Rejection, ingest_file
from gateway.pool.seed import DemoEntity, DemoPerson, DemoSubjects, bulk_persons, seed_demo
from gateway.pool.store import Pool, PoolError, PoolIntegrityError
from gateway.pool.validate import Problem, validate_row

__all__ = [
    "DemoEntity",
    "DemoPerson",
    "DemoSubjects",
    "IngestReport",
    "Pool",
    "PoolError",
    "PoolIntegrityError",
    "Problem",
    "Rejection",
    "bulk_persons",
    "ingest_file",
    "seed_demo",
    "validate_row",
]
