"""The adaptive risk engine: signals from a sign-in's context, a score, a level, a decision.

``signals`` are small pure functions, ``policy`` turns fired signals into a score, level and
decision (and can be replaced to simulate a proposed policy), ``history`` reads what the engine
knows about an account and a network, ``geo`` places an IP with a GeoIP2 database.
"""
