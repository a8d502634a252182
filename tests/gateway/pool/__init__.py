"""Shared builders for the pool tests: valid subjects and rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from stdnum.cn import ric, uscc

from gateway import catalog, keys
from gateway.catalog import Catalog
from gateway.keys import KeyRing
from gateway.pool import Pool

CATALOG: Catalog = catalog.load()


def id_number(region: str = "513221", born: date = date(1986, 4, 12), order: int = 11) -> str:
    body = f"{region}{born:%Y%m%d}{order:03d}"
    return body + ric.calc_check_digit(body + "0")


def uscc_code(org: str = "MA6CB1234") -> str:
    body = f"91513221{org}"
    return body + uscc.calc_check_digit(body)


def person(
    name: str = "陈凯",
    *,
    born: date = date(1986, 4, 12),
    order: int = 11,
    phone: str = "13800001234",
    region: str = "513221",
) -> dict[str, str]:
    return {
        "id_number": id_number(region, born, order),
        "name": name,
        "gender": "男" if order % 2 else "女",
        "birth_date": born.isoformat(),
        "ethnicity": "羌族",
        "household_address": "四川省阿坝藏族羌族自治州汶川县威州镇羌锋村2组8号",
        "region_code": region,
        "phone": phone,
    }


def licence(code: str, no: str, status: str = "有效") -> dict[str, str]:
    return {
        "uscc": code,
        "licence_no": no,
        "licence_type": "食品经营许可证",
        "issuer": "汶川县行政审批局",
        "issued_date": "2024-03-15",
        "valid_until": "2029-03-14",
        "status": status,
    }


def new_keyring(directory: Path) -> KeyRing:
    """The directory's key ring, made on first use."""
    path = directory / "keys" / "keyring.json"
    return keys.load(path) if path.exists() else keys.generate(path)


def new_pool(directory: Path, keyring: KeyRing | None = None) -> Pool:
    return Pool(directory / "pool.db", keyring or new_keyring(directory), CATALOG)
