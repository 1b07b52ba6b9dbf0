"""Currencies: the ISO 4217 codes Meta can take as an event's `currency`.

Meta wants "a valid ISO 4217 three-letter currency code" (conversions-api/parameters/custom-data; its
SDK's `CustomData.currency`). Three letters are not yet a currency: `RMB` is a common name of the yuan,
not its code (`CNY`), and Meta refuses it, on the Conversions API with the whole request. The list is
pycountry's ISO 4217 table, frozen here (no import at run time; `tests/integration/test_currencies.py` keeps it equal
to the library's), without the codes that are not money a purchase is paid in: precious metals (XAU,
XAG, XPD, XPT), bond-market and accounting units (XBA-XBD, XDR, XSU, XUA, XAD), the testing and "no
currency" codes (XTS, XXX) and the fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW).
"""

from __future__ import annotations

from typing import Any

_CODES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP
    CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
    HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL
    MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
ISO_4217 = frozenset(_CODES.split())


def currency_code(value: Any) -> str | None:
    """The ISO 4217 code a value names (trimmed, any case: `usd` -> `USD`), or None for anything else."""
    if type(value) is not str or len(value) > 8:  # bounded before any work
        return None
    code = value.strip().upper()
    return code if code in ISO_4217 else None
