"""The permission rule of docs/permissions.md, walked over every public method of every service.

Each public method of each service class is found by introspection and called by a *stranger*
(a user who shares no team with the victims) against another tenant's team, invitation or user,
and against ones that do not exist: the two answers must be the same NotFound (or the same
"nothing"), never Forbidden, and the victim's rows must be unchanged. The table of
docs/permissions.md says which answer each method gives; a new public method fails here until it
is in that table and behaves as it says. Then an *insider* (a plain member of the victim team,
so a teammate of its users) must never get NotFound where a system actor finds the row: it sees
them. Caches of both backends are warmed with the victim's rows before every call, so the
cached reads are checked on the path that serves them from the cache.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbops.crypto import Keyring, generate_key
from dbops.db import Database
from dbops.errors import DbopsError, FeatureUnavailable, Forbidden, NotFound
from dbops.models import Role
from dbops.services import (
    InvitationService,
    IssuedInvitation,
    MembershipService,
    QueryCache,
    TeamService,
    TeamView,
    UserService,
    UserView,
)
from dbops.services._base import Actor
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
SERVICES: tuple[type, ...] = (TeamService, MembershipService, InvitationService, UserService)
#: Parameters that name a team-scoped target (a team, through its id, slug or invitation).
TEAM_TARGETS = {"team_id", "invitation_id"}
#: Parameters that name any target; a method with one of them cannot be "not scoped".
TARGETS = TEAM_TARGETS | {"user_id", "to_user_id"}
VICTIM_PHONE = "+14155550123"
MISSING_SLUG = "no-such-team"
MISSING_EMAIL = "nobody@example.com"


def public_methods() -> list[str]:
    """``Class.method`` for every public method of every service class."""
    return sorted(
        f"{cls.__name__}.{name}"
        for cls in SERVICES
        for name, _ in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    )


def documented() -> dict[str, str]:
    """``Class.method`` -> its "A stranger gets" cell, from the table of docs/permissions.md."""
    rows: dict[str, str] = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and (match := re.fullmatch(r"`(\w+\.\w+)`", cells[0])):
            rows[match.group(1)] = cells[3]
    return rows


DOCUMENTED = documented()


def method(qualified: str) -> tuple[type, Callable[..., Any]]:
    cls_name, name = qualified.split(".")
    cls = next(c for c in SERVICES if c.__name__ == cls_name)
    return cls, getattr(cls, name)


def parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(fn).parameters.items()
        if name not in ("self", "actor")
    }


# -- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    services: dict[type, Any]
    owner: UserView  # owner of the victim team
    member: UserView  # a plain member of it: the target of membership calls
    insider: UserView  # another plain member: sees the team and its users
    stranger: UserView  # member of its own team only
    team: TeamView
    stranger_team: TeamView
    invitation: IssuedInvitation
    geo: bool

    @property
    def markers(self) -> list[str]:
        """Strings none of which may appear in anything a stranger gets."""
        return [
            str(self.team.id),
            self.team.slug,
            self.team.name,
            str(self.owner.id),
            self.owner.email,
            str(self.member.id),
            self.member.email,
            str(self.invitation.invitation_id),
        ]

    def victim_state(self) -> tuple[object, ...]:
        """The victim's rows as a system actor reads them (to prove nothing was changed)."""
        teams, members, invitations, users = (self.services[c] for c in SERVICES)
        return (
            teams.get(SYSTEM, self.team.id, include_deleted=True),
            members.members(SYSTEM, self.team.id),
            invitations.pending_for_team(SYSTEM, self.team.id),
            users.get(SYSTEM, self.owner.id, include_deleted=True),
            users.get(SYSTEM, self.member.id, include_deleted=True),
            users.get_phone(SYSTEM, self.owner.id),
        )


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring({1: generate_key()}, generate_key())


def build_world(db: Database, cache: QueryCache, keyring: Keyring) -> World:
    services: dict[type, Any] = {
        TeamService: TeamService(db, cache),
        MembershipService: MembershipService(db, cache),
        InvitationService: InvitationService(db, cache),
        UserService: UserService(db, cache, hasher=FAST_HASHER, keyring=keyring),
    }
    teams, members, invitations, users = (services[c] for c in SERVICES)

    def user(name: str) -> UserView:
        return users.create(
            SYSTEM, email=f"{name}@example.com", password=PASSWORD, display_name=name.title()
        )

    owner, member, insider, stranger = (user(n) for n in ("owner", "member", "insider", "eve"))
    team = teams.create(Actor.user(owner.id), name="Victim Corp", slug="victim-corp")
    members.add_member(SYSTEM, team.id, member.id)
    members.add_member(SYSTEM, team.id, insider.id)
    # The stranger's own team matches the same search words and lies at the same place.
    own = teams.create(Actor.user(stranger.id), name="Victim Fans", slug="eve-fans")
    invitation = invitations.invite(SYSTEM, team.id, "invitee@example.com")
    users.set_phone(SYSTEM, owner.id, VICTIM_PHONE)
    geo = True
    try:
        teams.set_location(SYSTEM, team.id, 48.85, 2.35)
        teams.set_location(SYSTEM, own.id, 48.85, 2.35)
    except FeatureUnavailable:
        geo = False
    # Warm every cached read with the victim's answers (and a cached "absent").
    for actor in (SYSTEM, Actor.user(owner.id), Actor.user(member.id)):
        teams.get_by_slug(actor, team.slug)
        members.role_of(actor, team.id, member.id)
    with pytest.raises(NotFound):
        teams.get_by_slug(SYSTEM, MISSING_SLUG)
    return World(services, owner, member, insider, stranger, team, own, invitation, geo)


@pytest.fixture
def world(clean_db: Database, cache: QueryCache, keyring: Keyring) -> World:
    return build_world(clean_db, cache, keyring)


def arguments(fn: Callable[..., Any], w: World, *, victim: bool) -> dict[str, Any]:
    """Values of the required parameters of ``fn``: the victim's target, or a missing one."""
    params = parameters(fn)
    team_scoped = bool(TEAM_TARGETS & set(params))
    values = {
        "team_id": w.team.id if victim else uuid.uuid4(),
        "slug": w.team.slug if victim else MISSING_SLUG,
        "invitation_id": w.invitation.invitation_id if victim else uuid.uuid4(),
        # In a team-scoped call the user is a member of the team; else the user is the target.
        "user_id": w.member.id if team_scoped else (w.owner.id if victim else uuid.uuid4()),
        "to_user_id": w.member.id,
        "email": w.owner.email if victim else MISSING_EMAIL,
        "name": "Renamed",
        "display_name": "Renamed",
        "tags": ["x"],
        "role": Role.MEMBER,
        "lat": 48.85,
        "lon": 2.35,
        "radius_km": 50.0,
        "q": "victim",
        "phone": VICTIM_PHONE,
    }
    out: dict[str, Any] = {}
    for name, p in params.items():
        if p.default is not p.empty:
            continue
        if name not in values:
            pytest.fail(f"the permission walk has no value for parameter {name!r}: add one")
        out[name] = values[name]
    return out


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", or the DbopsError class name
    message: str
    value: object = None


def attempt(call: Callable[[], object]) -> Outcome:
    try:
        return Outcome("ok", "", call())
    except DbopsError as err:
        return Outcome(type(err).__name__, str(err))


def call_as(w: World, qualified: str, actor: Actor, *, victim: bool) -> Outcome:
    cls, fn = method(qualified)
    kwargs = arguments(fn, w, victim=victim)
    return attempt(lambda: fn(w.services[cls], actor, **kwargs))


# -- the table is complete ----------------------------------------------------------------------


def test_every_public_method_is_in_the_permissions_table() -> None:
    methods = public_methods()
    assert len(methods) > 30, "introspection found too few methods"
    missing = sorted(set(methods) - set(DOCUMENTED))
    stale = sorted(set(DOCUMENTED) - set(methods))
    assert not missing, f"add these to the table of docs/permissions.md: {missing}"
    assert not stale, f"docs/permissions.md lists methods that do not exist: {stale}"


@pytest.mark.parametrize("qualified", public_methods())
def test_a_method_with_a_target_is_scoped(qualified: str) -> None:
    _, fn = method(qualified)
    if DOCUMENTED.get(qualified, "").startswith("not scoped"):
        assert not TARGETS & set(parameters(fn)), f"{qualified} names a target: it is scoped"


# -- the walk ------------------------------------------------------------------------------------


@pytest.mark.parametrize("qualified", public_methods())
def test_a_stranger_learns_nothing(world: World, qualified: str) -> None:
    rule = DOCUMENTED[qualified]
    if rule.startswith("not scoped"):
        return
    if qualified == "TeamService.teams_near" and not world.geo:
        pytest.skip("no PostGIS on this server: `make setup` installs postgresql-15-postgis-3")
    _, fn = method(qualified)
    stranger = Actor.user(world.stranger.id)
    before = world.victim_state()

    got = call_as(world, qualified, stranger, victim=True)
    missing = call_as(world, qualified, stranger, victim=False)

    if rule.startswith("Forbidden"):
        # A system-only action: refused whatever the data, with a message that names none.
        assert got.kind == missing.kind == "Forbidden", (got, missing)
        assert got.message == missing.message
    else:
        assert got.kind != "Forbidden", f"{qualified}: a stranger learns the target exists: {got}"
        if rule.startswith("NotFound"):
            expected = re.search(r'"([^"]+)"', rule)
            assert expected is not None, f"docs/permissions.md: no message for {qualified}"
            assert (got.kind, got.message) == ("NotFound", expected.group(1)), got
            assert (missing.kind, missing.message) == ("NotFound", expected.group(1)), missing
        elif rule.startswith(("None", "empty")):
            assert got.kind == "ok", got
            assert inspect.signature(fn).return_annotation not in (None, "None"), (
                f"{qualified} returns nothing: returning normally means it did the change"
            )
            shown = repr(got.value)
            leaked = [m for m in world.markers if m in shown]
            assert not leaked, f"{qualified} showed a stranger {leaked}"
            if TARGETS & set(parameters(fn)):
                assert got == missing
        else:
            pytest.fail(f"docs/permissions.md: unknown answer {rule!r} for {qualified}")
    assert world.victim_state() == before, f"{qualified} changed the victim's rows"


@pytest.mark.parametrize(
    "qualified",
    [m for m in public_methods() if not DOCUMENTED[m].startswith(("not scoped", "Forbidden"))],
)
def test_an_insider_is_never_told_not_found_for_what_it_sees(world: World, qualified: str) -> None:
    """A member of the team (a teammate of its users) gets the answer, Forbidden, or the
    NotFound a system actor gets too (a row that really is not there)."""
    if qualified == "TeamService.teams_near" and not world.geo:
        pytest.skip("no PostGIS on this server: `make setup` installs postgresql-15-postgis-3")
    got = call_as(world, qualified, Actor.user(world.insider.id), victim=True)
    assert got.kind in ("ok", "Forbidden", "NotFound", "InvalidInput"), got
    if got.kind == "NotFound":
        system = call_as(world, qualified, SYSTEM, victim=True)
        assert (system.kind, system.message) == (got.kind, got.message), (
            f"{qualified}: NotFound for a member, {system} for a system actor"
        )


# -- soft-deleted targets ----------------------------------------------------------------------


def test_soft_deleted_team_and_user_are_not_found_for_a_stranger(world: World) -> None:
    teams, users = world.services[TeamService], world.services[UserService]
    stranger, owner = Actor.user(world.stranger.id), Actor.user(world.owner.id)
    teams.delete(owner, world.team.id)
    for team_id in (world.team.id, uuid.uuid4()):
        with pytest.raises(NotFound, match=r"^no deleted team with this id$"):
            teams.restore(stranger, team_id)
        with pytest.raises(NotFound, match=r"^team not found$"):
            teams.get(stranger, team_id, include_deleted=True)
    # Its owner still sees it, and restores it.
    assert teams.get(owner, world.team.id, include_deleted=True).deleted_at is not None
    assert teams.restore(owner, world.team.id).deleted_at is None

    gone = users.create(SYSTEM, email="gone@example.com", password=PASSWORD, display_name="G")
    users.delete(SYSTEM, gone.id)
    for user_id in (gone.id, uuid.uuid4()):
        with pytest.raises(NotFound, match=r"^no deleted user with this id$"):
            users.restore(stranger, user_id)
        with pytest.raises(NotFound, match=r"^user not found$"):
            users.get(stranger, user_id, include_deleted=True)


# -- users: self and teammates -----------------------------------------------------------------


def test_a_user_sees_itself_and_its_teammates_only(world: World) -> None:
    users = world.services[UserService]
    insider = Actor.user(world.insider.id)
    assert users.get(insider, world.insider.id) == world.insider
    assert users.get(insider, world.owner.id) == users.get(SYSTEM, world.owner.id)
    assert users.get_by_email(insider, world.member.email.upper()).id == world.member.id
    with pytest.raises(NotFound, match=r"^user not found$"):
        users.get(insider, world.stranger.id)
    with pytest.raises(NotFound, match=r"^user not found$"):
        users.get_by_email(insider, world.stranger.email)
    # A teammate through a soft-deleted team only is no teammate.
    world.services[TeamService].delete(Actor.user(world.owner.id), world.team.id)
    with pytest.raises(NotFound, match=r"^user not found$"):
        users.get(insider, world.owner.id)
    assert users.get(insider, world.insider.id) == world.insider


def test_listing_users_is_for_system_actors_only(world: World) -> None:
    users = world.services[UserService]
    with pytest.raises(Forbidden, match="system actor"):
        users.list_users(Actor.user(world.owner.id))
    emails = {u.email for u in users.list_users(SYSTEM).items}
    assert {world.owner.email, world.stranger.email} <= emails


# -- teams: listings of a user actor -----------------------------------------------------------


def test_listings_of_a_user_hold_its_teams_only_with_keyset_pages(world: World) -> None:
    teams = world.services[TeamService]
    eve = Actor.user(world.stranger.id)
    own = [world.stranger_team.id]
    for i in range(4):  # her teams, interleaved in time with teams she is not in
        own.append(teams.create(eve, name=f"Eve {i}", slug=f"eve-{i}").id)
        teams.create(Actor.user(world.owner.id), name=f"Other {i}", slug=f"other-{i}")
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = teams.list_teams(eve, limit=2, cursor=cursor)
        seen += [t.id for t in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == own
    assert len(teams.list_teams(SYSTEM, limit=100).items) == 10
    assert [m.team.id for m in teams.search_teams(eve, "victim")] == [world.stranger_team.id]
    assert {m.team.id for m in teams.search_teams(SYSTEM, "victim")} == {
        world.team.id,
        world.stranger_team.id,
    }
    if world.geo:
        assert [n.team.id for n in teams.teams_near(eve, 48.85, 2.35, 10)] == [
            world.stranger_team.id
        ]


# -- cached reads --------------------------------------------------------------------------------


def test_a_cached_team_never_reaches_a_non_member(world: World, cache: QueryCache) -> None:
    teams, members = world.services[TeamService], world.services[MembershipService]
    member, stranger = Actor.user(world.member.id), Actor.user(world.stranger.id)
    hits = cache.stats().hits
    with pytest.raises(NotFound, match=r"^team not found$"):
        teams.get_by_slug(stranger, world.team.slug)
    assert cache.stats().hits > hits, "the team was not served from the cache"
    # The stranger's refusal is not stored for others.
    assert teams.get_by_slug(member, world.team.slug) == teams.get_by_slug(SYSTEM, world.team.slug)
    # A member who leaves is refused at once, though the team stays cached.
    members.leave(member, world.team.id)
    with pytest.raises(NotFound, match=r"^team not found$"):
        teams.get_by_slug(member, world.team.slug)
    assert teams.get_by_slug(Actor.user(world.owner.id), world.team.slug).id == world.team.id
    # And one who joins is let in at once.
    members.add_member(SYSTEM, world.team.id, world.stranger.id)
    assert teams.get_by_slug(stranger, world.team.slug).id == world.team.id


def test_a_stranger_miss_does_not_hide_the_team_from_its_members(
    clean_db: Database, cache: QueryCache, keyring: Keyring
) -> None:
    """Nothing cached yet: the stranger's read loads first, then a member's must still find it."""
    w = build_world(clean_db, cache, keyring)
    teams = w.services[TeamService]
    teams.rename(SYSTEM, w.team.id, "Victim Corp 2")  # drops the cached team
    with pytest.raises(NotFound):
        teams.get_by_slug(Actor.user(w.stranger.id), w.team.slug)
    assert teams.get_by_slug(Actor.user(w.insider.id), w.team.slug).name == "Victim Corp 2"


def test_role_of_tells_a_non_member_nothing(world: World) -> None:
    members = world.services[MembershipService]
    stranger, insider = Actor.user(world.stranger.id), Actor.user(world.insider.id)
    assert members.role_of(stranger, world.team.id, world.owner.id) is None
    assert members.role_of(stranger, world.team.id, world.stranger.id) is None
    assert members.role_of(insider, world.team.id, world.owner.id) is Role.OWNER
    assert members.role_of(stranger, world.stranger_team.id, world.stranger.id) is Role.OWNER
