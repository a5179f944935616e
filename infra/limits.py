"""The settings an operator sizes for an event, as stack parameters (``infra/template.py``) with the
local mode's defaults; ``infra/deploy.py`` checks them before anything is uploaded and
docs/deploy.md has a sizing table for them."""
from __future__ import annotations

from dataclasses import dataclass

WHOLE = r"-?[0-9]+"  # what a Number parameter of a whole limit is written as
DECIMAL = r"(0?\.[0-9]+|1(\.0*)?)"  # the AllowedPattern of a decimal one (a share, 0 to 1)


@dataclass(frozen=True)
class Limit:
    """A setting an operator sizes for an event: a stack parameter with the local default."""

    variable: str  # the functions' environment variable (or the hub's, for hub limits)
    default: float
    low: float
    high: float
    description: str
    hub: bool = False  # read by the location's JupyterHub (bootstrap.sh), not by the functions

    @property
    def whole(self) -> bool:
        """A whole number (a Number parameter); else a decimal, passed as a String parameter."""
        return float(self.default).is_integer()


LIMITS = {
    "ClientRateLimit": Limit("WOD_RATE_LIMIT_PER_MINUTE", 30, 0, 100_000,
                             "Registrations from one client address (an IPv6 /64) per minute; 0: no limit (none of "
                             "these limits). A venue's address (VenueNetworks) has VenueRateLimit instead"),
    "DomainRateLimit": Limit("WOD_DOMAIN_RATE_LIMIT_PER_MINUTE", 300, 0, 100_000,
                             "Registrations for one email domain per minute; 0: no limit"),
    "HoldsPerClient": Limit("WOD_HOLDS_PER_CLIENT", 10, 0, 100_000,
                            "Unconfirmed holds one client address takes per confirmation window; 0: no limit"),
    "VenueRateLimit": Limit("WOD_VENUE_RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000,
                            "Registrations per minute from an address of VenueNetworks (a room behind one NAT)"),
    "VenueHolds": Limit("WOD_VENUE_HOLDS", 1000, 1, 1_000_000,
                        "Unconfirmed holds an address of VenueNetworks takes per confirmation window"),
    "MailboxDailyCap": Limit("WOD_MAILBOX_MAILS_PER_DAY", 8, 1, 1000,
                             "Emails registering sends one mailbox per day (confirmations, 'already registered')"),
    "MailBulkShare": Limit("WOD_MAIL_BULK_SHARE", 0.7, 0.05, 1,
                           "Part of each second's sending rate participant mail may use (the rest: orders, "
                           "credentials)"),
    "ReadySeconds": Limit("WOD_READY_TIMEOUT_SECONDS", 180, 10, 3600,
                          "Seconds a participant's server (and appliance) may take to answer once the hub starts it "
                          "(a spawn waiting for the hub's turn does not count) before the provisioning fails"),
    "StuckMinutes": Limit("WOD_STUCK_MINUTES", 10, 2, 1440,
                          "Minutes a provisioning may take before it is failed (apology, seat back)"),
    "HubSpawnLimit": Limit("WOD_HUB_CONCURRENT_SPAWNS", 10, 1, 1000,
                           "Participants' servers the hub starts at once (the rest wait their turn)", hub=True),
    "IdleMinutes": Limit("WOD_IDLE_MINUTES", 20, 0, 1440,
                         "Minutes without traffic before the hub stops a participant's server (0: never)", hub=True),
}
