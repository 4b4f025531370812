"""Demo vocabulary: names, words, locales, weights, city centres and the named personas."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CITIES",
    "FEATURES",
    "FIRST_NAMES",
    "INVITATION_STATUSES",
    "LAST_NAMES",
    "LOCALES",
    "PERSONAS",
    "PLANS",
    "TAGS",
    "TEAM_ADJECTIVES",
    "TEAM_NOUNS",
    "TEAM_SUFFIXES",
    "TITLES",
    "City",
    "Persona",
]


@dataclass(frozen=True)
class Persona:
    """A named demo user with a fixed email, always created by :func:`seed`."""

    email: str
    display_name: str
    role: str
    title: str
    owner_of: int
    member_of: int


#: Demo personas: Ada is the account-wide OWNER, Olivia owns several teams, Max is in many.
PERSONAS = (
    Persona("ada.admin@demo.dbops.dev", "Ada Admin", "OWNER", "Administrator", 0, 3),
    Persona("olivia.owner@demo.dbops.dev", "Olivia Owner", "MEMBER", "Founder", 5, 0),
    Persona("max.member@demo.dbops.dev", "Max Member", "MEMBER", "Consultant", 0, 40),
)


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text``."""
    return tuple(text.split())


FIRST_NAMES = _words(
    """
    Aaliyah Adam Aiko Alejandro Amara Amelia Andrei Anna Arjun Ava Benjamin Camila Carlos
    Chen Chloe Daniel David Diego Elena Elijah Emma Ethan Fatima Felix Freya Gabriel Grace
    Hannah Hiroshi Ibrahim Isabella Ivan Jack James Jana Javier Julia Kai Kofi Lars Layla
    Leo Liam Lucas Lucia Maya Mei Mia Mohammed Nadia Noah Nora Olga Omar Priya Rafael Ravi
    Rosa Sakura Samuel Sara Sofia Tariq Theo Valentina Wei Yara Yusuf Zoe
    """
)
LAST_NAMES = _words(
    """
    Abe Adeyemi Ahmed Alvarez Andersen Bauer Becker Brown Carter Chen Costa Dubois Evans
    Fischer Garcia Gonzalez Gupta Hansen Hoffmann Ivanova Jansen Johnson Kaur Khan Kim
    Kowalski Larsen Lee Lopez Martin Martinez Meyer Miller Moreau Muller Nakamura Nguyen
    Novak Okafor Olsen Park Patel Perez Petrov Rossi Santos Schmidt Silva Singh Smith
    Suzuki Tanaka Taylor Thompson Torres Wagner Walker Wang Weber Williams Wilson Wu
    Yamamoto Zhang
    """
)
LOCALES = (
    ("en-US", "America/New_York"),
    ("en-US", "America/Chicago"),
    ("en-US", "America/Los_Angeles"),
    ("en-GB", "Europe/London"),
    ("de-DE", "Europe/Berlin"),
    ("fr-FR", "Europe/Paris"),
    ("es-ES", "Europe/Madrid"),
    ("nl-NL", "Europe/Amsterdam"),
    ("sv-SE", "Europe/Stockholm"),
    ("pt-BR", "America/Sao_Paulo"),
    ("en-IN", "Asia/Kolkata"),
    ("ja-JP", "Asia/Tokyo"),
    ("en-AU", "Australia/Sydney"),
)
TITLES = (
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Product Manager",
    "Product Designer",
    "Data Analyst",
    "Data Scientist",
    "DevOps Engineer",
    "QA Engineer",
    "Support Specialist",
    "Account Executive",
    "Marketing Manager",
    "Technical Writer",
    "Founder",
    "CTO",
)
TAGS = (
    "beta",
    "early-adopter",
    "newsletter",
    "mobile",
    "api",
    "sso",
    "trial",
    "vip",
    "churn-risk",
    "partner",
)
TEAM_ADJECTIVES = _words(
    """
    amber azure bold brave bright calm clever cobalt coral crimson daring eager emerald
    fearless golden happy honest indigo ivory jade keen lively lucky mighty misty nimble
    noble olive quick quiet rapid royal ruby rustic silent silver smart solar steady
    stellar swift teal urban velvet vivid wild wise
    """
)
TEAM_NOUNS = _words(
    """
    anchors badgers beacons bears comets cranes dolphins dragons eagles embers falcons
    foxes geckos harbors hawks herons lanterns lions lynx meteors otters owls pandas
    panthers pilots pines rangers ravens rivers rockets sparrows squirrels summits tigers
    turtles voyagers wolves
    """
)
TEAM_SUFFIXES = ("", "", "", "labs", "studio", "works", "collective", "squad", "guild", "co")
PLANS = (("free", 70), ("pro", 25), ("enterprise", 5))
FEATURES = (
    "audit-log",
    "sso",
    "api-access",
    "webhooks",
    "custom-domain",
    "priority-support",
    "data-export",
)
#: (status, weight) of seeded invitations.
INVITATION_STATUSES = (("pending", 45), ("accepted", 30), ("expired", 15), ("revoked", 10))


@dataclass(frozen=True)
class City:
    """A real city centre that seeded team locations cluster around (WGS 84 degrees)."""

    name: str
    lat: float
    lon: float


#: Seeded team locations are spread around these centres.
CITIES = (
    City("Paris", 48.8566, 2.3522),
    City("London", 51.5074, -0.1278),
    City("Berlin", 52.5200, 13.4050),
    City("Amsterdam", 52.3676, 4.9041),
    City("Madrid", 40.4168, -3.7038),
    City("Stockholm", 59.3293, 18.0686),
    City("New York", 40.7128, -74.0060),
    City("San Francisco", 37.7749, -122.4194),
    City("Toronto", 43.6532, -79.3832),
    City("Sao Paulo", -23.5505, -46.6333),
    City("Bangalore", 12.9716, 77.5946),
    City("Tokyo", 35.6762, 139.6503),
    City("Sydney", -33.8688, 151.2093),
)
