"""How long a vehicle still needs to its destination, from the fleet's own history. No database here:
crm_link/eta.py gathers what a forecast needs, crm_link/eta_calibration.py measures the methods.

The methods (storage.vocabulary.ETA_METHODS):
- `speed`: the distance left over the vehicle's smoothed recent speed, bounded; what there was before
  any history, and the fall-back while there is too little.
- `profile`: the route ahead in pieces of PIECE_M, each at the pace the speed profile expects of its
  cell at the hour the vehicle will be there. Near the vehicle that pace is scaled by the live ratio
  (how much slower or faster than usual it drove the last LIVE_WINDOW_S), the scaling fading with the
  distance ahead over `fade_m`; plus the long stops the past trips to the same place made on the way.
- `past_trips`: the median time the K past trips most like this one took from here to the destination
  (like in hour of the day and in how fast they drove the stretch just behind).
- `blend`: both, weighted by the inverse square of the error each has made on past trips.
Each ETA gets a p10-p90 band that spans what else the time to go could be (SCENARIOS: the usual pace
from here on, the live ratio all the way where the live ratio counts at all, the nearest past trips),
widened or narrowed by margins measured on past trips the way conformal prediction does
(crm_link/eta_calibration.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crm_link.grid import ANY_HOUR, BUCKET_KMH, Floats, Ints, cells, hour_of_week, hours_of_week, metres, metres_from

PIECE_M = 100.0
PRIOR_M = 500.0  # history a cell's own pace needs to count as much as the pace around it
KNOWN_M = 1000.0  # a cell is known once this much driving in it is folded
MIN_COVERAGE = 0.5  # of the route ahead in known cells, for the profile to be used
MIN_PAIRS = 500  # pairs in the whole profile, for the profile to be used
LIVE_WINDOW_S = 300.0  # the live ratio: the last five minutes
LIVE_HALF_LIFE_S = 40.0  # of a fix's weight in it (today's speed average: 0.2 a fix, 10 s apart)
LIVE_PRIOR_S = 10.0  # (weighted) seconds of driving the live ratio needs to count half
RATIO_RANGE = (0.2, 8.0)
FADE_M = 2000.0  # until measured
MAX_GAP_S = 120.0
DWELL_S = 300.0
MATCH_M = 200.0  # a past trip passed a place when a point of its path is this close
K = 5
K_MIN = 3
MAX_UNLIKE = 2.0  # a past trip further off (4 h of the day, or 2.25 times the pace) is not like this one
MIN_QUERIES = 20  # measured queries a weight needs, and a band of one bucket alone
DEFAULT_BAND = (math.log(0.8), math.log(1.35))  # ln(actual / predicted time to go), until measured
SCENARIOS = ("usual", "persisting", "past_trips")  # what the band spans besides the ETA given
BUCKETS_S = (900.0, 2700.0)  # time to go: under 15 min, 15-45 min, more


def bucket(to_go_s: float) -> int:
    return int(np.searchsorted(BUCKETS_S, to_go_s, side="right"))


@dataclass(frozen=True)
class Fixes:
    t: Floats  # epoch seconds, ascending
    lat: Floats
    lon: Floats

    def since(self, t0: float) -> Fixes:
        keep = self.t >= t0
        return Fixes(self.t[keep], self.lat[keep], self.lon[keep])


@dataclass
class ProfileView:
    """The rows of the speed profile a forecast needs: (cell, hour of week or ANY_HOUR) → (metres,
    seconds); and the totals over every cell."""

    rows: dict[tuple[int, int], tuple[float, float]]
    metres: float
    seconds: float
    pairs: int
    median_kmh: float | None

    def pace(self, cell: int, hour: int) -> float:
        """Seconds a metre, each level leaning on the one above until it has PRIOR_M of its own."""
        pace = self.seconds / self.metres
        for key in ((cell, ANY_HOUR), (cell, hour)):
            m, s = self.rows.get(key, (0.0, 0.0))
            pace = (s + PRIOR_M * pace) / (m + PRIOR_M)
        return pace

    def paces(self, cell: Ints, hour: Ints) -> Floats:
        """pace() of each (cell, hour), array by array (broadcast): each distinct pair worked out once."""
        cell, hour = np.broadcast_arrays(cell, hour)
        keys, at = np.unique(cell.ravel(), return_inverse=True)
        code, back = np.unique(at * 256 + hour.ravel(), return_inverse=True)  # hours < 256: one key
        return np.array([self.pace(int(keys[k >> 8]), k & 255) for k in code.tolist()])[back].reshape(cell.shape)

    def known_m(self, cell: int) -> float:
        return self.rows.get((cell, ANY_HOUR), (0.0, 0.0))[0]

    @property
    def enough(self) -> bool:
        return self.pairs >= MIN_PAIRS and self.metres > 0

    def without(self, path: PastTrip) -> ProfileView:
        """This view with a trip's own driving taken out (to measure the profile on trips it holds)."""
        rows = dict(self.rows)
        own_m = own_s = 0.0
        for cell, hour, m, s in path.driving():
            own_m, own_s = own_m + m, own_s + s
            for key in ((cell, hour), (cell, ANY_HOUR)):
                km, ks = rows.get(key, (0.0, 0.0))
                rows[key] = (max(km - m, 0.0), max(ks - s, 0.0))
        return ProfileView(rows, max(self.metres - own_m, 1.0), max(self.seconds - own_s, 1.0), self.pairs,
                           self.median_kmh)


def median_kmh(counts: list[int]) -> float | None:
    """The median of a speed histogram (speed_counts), inside its bucket by linear interpolation."""
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() == 0:
        return None
    cum = np.cumsum(c)
    i = int(np.searchsorted(cum, c.sum() / 2))
    below = cum[i - 1] if i else 0.0
    return float((i + (c.sum() / 2 - below) / c[i]) * BUCKET_KMH)


@dataclass(frozen=True)
class PastTrip:
    """A completed trip's path: points about 50 m apart and the seconds each was before arrival."""

    lat: Floats
    lon: Floats
    to_go: Floats
    arrived_at: float  # epoch seconds

    def driving(self) -> list[tuple[int, int, float, float]]:
        """(cell, hour, metres, seconds) of each stretch between its points, long stops left out."""
        dt = self.to_go[:-1] - self.to_go[1:]
        d = metres(self.lat[:-1], self.lon[:-1], self.lat[1:], self.lon[1:])
        keep = (dt > 0) & (dt < DWELL_S)
        c = cells((self.lat[:-1] + self.lat[1:]) / 2, (self.lon[:-1] + self.lon[1:]) / 2)
        h = hours_of_week(self.arrived_at - self.to_go[:-1])
        return list(zip(c[keep].tolist(), h[keep].tolist(), d[keep].tolist(), dt[keep].tolist(), strict=True))

    def match(self, lat: float, lon: float, dest_lat: float, dest_lon: float,
              radius_m: float = 0.0) -> tuple[int, int] | None:
        """Where it passed this place and then arrived at the destination (point indices): entered its
        circle of `radius_m`, else came nearest it (a path ends where its own trip arrived); None unless
        it passed within MATCH_M of the place and of the destination's circle."""
        return _arrival(metres_from(self.lat, self.lon, lat, lon), metres_from(self.lat, self.lon, dest_lat, dest_lon),
                        radius_m)

    def long_stops_s(self, a: int, b: int) -> float:
        gaps = self.to_go[a:b] - self.to_go[a + 1:b + 1]
        return float(gaps[gaps >= DWELL_S].sum())


def _arrival(near: Floats, there: Floats, radius_m: float) -> tuple[int, int] | None:
    """PastTrip.match from its points' distances to the place and to the destination."""
    a = int(np.argmin(near))
    if near[a] > MATCH_M:
        return None
    inside = np.nonzero(there[a:] <= radius_m)[0]
    b = a + (int(inside[0]) if len(inside) else int(np.argmin(there[a:])))
    return (a, b) if there[b] <= radius_m + MATCH_M else None


@dataclass(frozen=True)
class Measured:
    """A method's errors in one bucket of time to go: how many queries, their mean absolute error, and
    the band's margins: its p10 is the lowest scenario times exp(q10), its p90 the highest times
    exp(q90)."""

    queries: int
    mae_s: float
    q10: float
    q90: float


@dataclass(frozen=True)
class Calibration:
    """What past trips said of each method, by bucket of time to go; and how far the live ratio counts."""

    by: dict[tuple[str, int], Measured] = field(default_factory=dict)
    fade_m: float = FADE_M

    def band(self, method: str, to_go_s: float, low_s: float, high_s: float) -> tuple[float, float]:
        """p10 and p90 of a time to go whose scenarios span low_s to high_s; never leaving it out."""
        m = self.by.get((method, bucket(to_go_s)))
        q10, q90 = (m.q10, m.q90) if m is not None else DEFAULT_BAND
        return min(to_go_s, low_s * math.exp(q10)), max(to_go_s, high_s * math.exp(q90))

    def weight(self, method: str, to_go_s: float) -> float:
        m = self.by.get((method, bucket(to_go_s)))
        return 1.0 if m is None or m.queries < MIN_QUERIES else 1.0 / max(m.mae_s, 30.0) ** 2


@dataclass(frozen=True)
class Ahead:
    """The route still ahead: the vehicle's distance to it, and its pieces (middles and lengths)."""

    offset_m: float
    lat: Floats
    lon: Floats
    length: Floats

    @property
    def cells(self) -> np.ndarray:
        return cells(self.lat, self.lon)

    def until(self, lat: float, lon: float, radius_m: float) -> Ahead:
        """The pieces before the first one inside the destination's circle: there the vehicle has arrived
        (and a past trip's path ended)."""
        inside = np.nonzero(metres_from(self.lat, self.lon, lat, lon) <= radius_m)[0]
        end = int(inside[0]) if len(inside) else len(self.length)
        return Ahead(self.offset_m, self.lat[:end], self.lon[:end], self.length[:end])


@dataclass(frozen=True)
class Forecast:
    to_go_s: float
    p10_s: float
    p90_s: float
    method: str
    by_method: dict[str, float]  # each method's time to go where it could answer (and `naive`, SCENARIOS)


def live_ratio(recent: Fixes, profile: ProfileView) -> float:
    """The time the vehicle took over its recent fixes over what the profile expects of them there, the
    newest counting most (weights halve every LIVE_HALF_LIFE_S back), so a jam shows at once and its
    end as soon."""
    dt = np.diff(recent.t)
    d = metres(recent.lat[:-1], recent.lon[:-1], recent.lat[1:], recent.lon[1:])
    c = cells((recent.lat[:-1] + recent.lat[1:]) / 2, (recent.lon[:-1] + recent.lon[1:]) / 2)
    h = hours_of_week(recent.t[:-1])
    w = np.where(dt <= MAX_GAP_S, 0.5 ** ((recent.t[-1] - recent.t[1:]) / LIVE_HALF_LIFE_S), 0.0)
    expected = float((w * d * profile.paces(c, h)).sum())
    took = float((w * dt).sum())
    if took == 0:
        return 1.0
    ratio = np.clip(took / max(expected, 1e-9), *RATIO_RANGE)
    return float(ratio ** (took / (took + LIVE_PRIOR_S)))  # leaning to 1 while little was seen


def profile_times(at: float, ahead: Ahead, recent: Fixes, profile: ProfileView,
                  fades_m: tuple[float, ...]) -> Floats | None:
    """Piece by piece at the expected pace when the vehicle gets there, scaled near it by the live
    ratio fading over each of `fades_m` (0: the usual pace from here on; inf: the live ratio all the
    way); None when too little of the route ahead is known."""
    if not profile.enough or len(ahead.length) == 0:
        return None
    cell = ahead.cells
    keys, at_piece = np.unique(cell, return_inverse=True)
    known = np.array([profile.known_m(int(c)) >= KNOWN_M for c in keys.tolist()])
    if ahead.length[known[at_piece]].sum() < MIN_COVERAGE * ahead.length.sum():
        return None
    fade = np.asarray(fades_m, dtype=np.float64)[:, None]
    ratio = np.where(fade > 0, live_ratio(recent, profile) if fade.max() > 0 else 1.0, 1.0)
    start = np.r_[0.0, np.cumsum(ahead.length)[:-1]]
    scale = 1 + (ratio - 1) * np.exp(-start / np.maximum(fade, 1.0))
    first = ahead.offset_m * profile.pace(int(cell[0]), hour_of_week(at)) * ratio[:, 0]
    hours = np.full(scale.shape, hour_of_week(at))
    while True:  # each piece at the hour the vehicle reaches it: again until no piece changes its hour
        took = ahead.length * profile.paces(cell, hours) * scale
        reached = first[:, None] + np.cumsum(took, axis=1) - took
        now = hours_of_week(at + reached)
        if np.array_equal(now, hours):
            return first + took.sum(axis=1)
        hours = now


@dataclass(frozen=True)
class Passage:
    """A past trip matched to this one: the time it took from here to the destination, its long stops
    on the way, and how unlike this trip it is (lower is more alike)."""

    to_go_s: float
    long_stops_s: float
    unlike: float


def passages(trips: list[PastTrip], at: float, recent: Fixes, dest: tuple[float, float],
             radius_m: float = 0.0) -> list[Passage]:
    """The past trips that went through the vehicle's place and then its destination (its geofence's
    circle of radius_m)."""
    lat, lon = float(recent.lat[-1]), float(recent.lon[-1])
    moved = float(metres(recent.lat[0], recent.lon[0], lat, lon)) >= MATCH_M
    if not trips:
        return []
    ends = np.cumsum([len(trip.lat) for trip in trips])
    every_lat, every_lon = np.concatenate([trip.lat for trip in trips]), np.concatenate([trip.lon for trip in trips])
    near, there, behind = (np.split(metres_from(every_lat, every_lon, *point), ends[:-1]) for point in
                           ((lat, lon), dest, (recent.lat[0], recent.lon[0])))  # every path at once: one call
    out = []
    for i, trip in enumerate(trips):
        matched = _arrival(near[i], there[i], radius_m)
        if matched is None:
            continue
        a, b = matched
        tod_h = abs(((trip.arrived_at - trip.to_go[a] - at) / 3600 + 12) % 24 - 12)
        unlike = tod_h / 2
        if moved:  # how long it took over the stretch this vehicle drove in its live window
            back = behind[i][:a + 1]
            c = int(np.argmin(back))
            took = trip.to_go[c] - trip.to_go[a] if back[c] <= MATCH_M else None
            unlike += 1.0 if took is None else abs(
                math.log((took + 30) / (recent.t[-1] - recent.t[0] + 30))) / math.log(1.5)
        out.append(Passage(float(trip.to_go[a] - trip.to_go[b]), trip.long_stops_s(a, b), unlike))
    return out


def past_trips_s(found: list[Passage]) -> float | None:
    alike = sorted((p for p in found if p.unlike <= MAX_UNLIKE), key=lambda p: p.unlike)
    return float(np.median([p.to_go_s for p in alike[:K]])) if len(alike) >= K_MIN else None


def usual_stops_s(found: list[Passage]) -> float:
    return float(np.median([p.long_stops_s for p in found])) if len(found) >= K_MIN else 0.0


def estimates(at: float, ahead: Ahead, recent: Fixes, profile: ProfileView, found: list[Passage],
              fade_m: float) -> dict[str, float]:
    """The time to go by the methods of history that can answer: `profile` (with the usual long stops
    of the past trips on the way) and `past_trips`; with the profile, its scenarios `usual` and
    `persisting` (the live ratio all the way, where it counts at all: fade_m > 0)."""
    by = {}
    times = profile_times(at, ahead, recent, profile, (fade_m, 0.0, math.inf if fade_m > 0 else 0.0))
    if times is not None:
        by |= dict(zip(("profile", *SCENARIOS[:2]), (times + usual_stops_s(found)).tolist(), strict=True))
    nearest = past_trips_s(found)
    if nearest is not None:
        by["past_trips"] = nearest
    return by


def blend(profile: float, past_trips: float, calibration: Calibration) -> float:
    guess = (profile + past_trips) / 2
    w_p, w_k = calibration.weight("profile", guess), calibration.weight("past_trips", guess)
    return (w_p * profile + w_k * past_trips) / (w_p + w_k)


def spread(by: dict[str, float], method: str) -> tuple[float, float]:
    """The lowest and the highest of the time to go by `method` and the SCENARIOS (none for `speed`:
    it is what is left without history)."""
    among = [by[method], *(by[k] for k in SCENARIOS if k in by and method != "speed")]
    return min(among), max(among)


def choose(by: dict[str, float], calibration: Calibration) -> Forecast:
    """The time to go given: the blend of profile and past trips where both answered, else the one that
    did, else `speed`; with the band its spread and its method's measured margins give."""
    if "profile" in by and "past_trips" in by:
        by = {**by, "blend": blend(by["profile"], by["past_trips"], calibration)}
    method = next(m for m in ("blend", "profile", "past_trips", "speed") if m in by)
    p10, p90 = calibration.band(method, by[method], *spread(by, method))
    return Forecast(by[method], p10, p90, method, by)


def median_route(trips: list[PastTrip], lat: float, lon: float, dest_lat: float, dest_lon: float) -> dict[str, Any]:
    """Without a planned route: the path of median length among the past trips from here to the
    destination, else the straight line (GeoJSON LineString)."""
    paths = []
    for trip in trips:
        matched = trip.match(lat, lon, dest_lat, dest_lon)
        if matched is not None:
            a, b = matched
            length = float(metres(trip.lat[a:b], trip.lon[a:b], trip.lat[a + 1:b + 1], trip.lon[a + 1:b + 1]).sum())
            paths.append((length, [[o, a_] for a_, o in zip(trip.lat[a:b + 1], trip.lon[a:b + 1], strict=True)]))
    coordinates = ([[lon, lat], *sorted(paths, key=lambda p: p[0])[len(paths) // 2][1][1:]] if paths
                   else [[lon, lat], [dest_lon, dest_lat]])
    return {"type": "LineString", "coordinates": [[float(x), float(y)] for x, y in coordinates]}
