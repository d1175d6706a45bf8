"""b2bua: a SIP back-to-back user agent for 700 number-protection calls."""

__version__ = "0.1.0"
