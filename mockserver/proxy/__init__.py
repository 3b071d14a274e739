"""The validating proxy (`--upstream`): API requests forwarded to the real platform behind the
mock's own front, both directions checked against the spec (`forward`), the upstream's drift
from the spec (`drift`), every exchange recorded as HAR 1.2 (`har`), a recording's items
seeded into the store (`seed`), and recorded answers compared with the mock's (`compare`)."""
