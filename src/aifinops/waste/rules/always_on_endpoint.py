"""``always-on-endpoint``: self-hosted inference endpoints that run around the clock for traffic that comes in
bursts, or hardly comes at all.

An endpoint is a model's serving workloads (``serving`` in ``RuleContext.workloads()``: long-running workloads whose
``llm.serving_label`` label names the model; pool ``endpoint:<model>``). Its up-time is the union of its
workloads' running intervals in the window, its cost what the allocation charged them, and its price per hour
cost / up-time (all replicas together).

Its requests (``llm_requests`` whose priced model, the response model else the request model, is the endpoint's
model, compared by model key: ``model.llm.model_key_sql``, so a request for ``meta-llama/Llama-3.1-8B`` reaches the
endpoint labelled ``llama-3.1-8b``) are replayed against scale-to-zero, in SQL: ordered by time, a gap longer than
``idle_timeout_minutes`` starts a new session (the endpoint scaled to zero after the last request of a burst). A
session's first request meets a cold start of ``cold_start_seconds``; the endpoint is up from it until
``idle_timeout_minutes`` after the later of the session's last request and the end of the cold start, clipped to
the window:

    replayed up-time = sum over sessions of (max(last, first + cold_start) + idle_timeout - first)
    saving = cost - replayed up-time x cost per hour = cost x (1 - replayed up-time / up-time)

Reported when the endpoint was up more than ``min_up_share`` of the window and the replay keeps it up less than
``max_busy_share``. The evidence counts the requests that would have met a cold start (the sessions' first) and
those that arrive within the cold start of a session and wait for it; confidence is high when those are at most
1% of the requests, medium above. An endpoint whose model has no request at all in the window is not judged: no
telemetry does not mean no traffic (an embedder or a ranker is not instrumented as LLM calls). With
``count_unseen_traffic`` it is, as idle all along (its whole cost saved, low confidence).

Assumptions: the window's traffic is typical; while up, the endpoint costs what it cost per hour in the window
(the replicas it ran, at the prices it paid); scaling to zero removes its whole cost (GPU nodes freed or
reused, as a cluster autoscaler or another workload would); requests take no time to serve beyond the cold start.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import Field

from ...model.llm import model_key_sql
from ..engine import Finding, Rule, RuleContext, rules

US = Decimal(1_000_000)


@rules.register("always-on-endpoint")
class AlwaysOnEndpoint(Rule):
    title = "Always-on inference endpoint"
    targets = "Self-hosted model endpoints kept up around the clock for bursty or low traffic: scale-to-zero fits"
    needs = ("gpu_nodes", "workloads", "llm_requests")

    class Options(Rule.Options):
        #: the endpoint scales to zero this long after the last request of a burst
        idle_timeout_minutes: float = Field(15.0, gt=0)
        #: a request that arrives while the endpoint is down waits this long (model load + pod start)
        cold_start_seconds: float = Field(120.0, ge=0)
        #: only endpoints up more than this share of the window (always on)
        min_up_share: float = Field(0.9, ge=0, le=1)
        #: only endpoints the replay keeps up less than this share of the window (bursty)
        max_busy_share: float = Field(0.6, gt=0, le=1)
        #: share of delayed requests above which confidence is no longer high
        max_cold_start_share: float = Field(0.01, ge=0, le=1)
        min_monthly_saving: Decimal = Field(Decimal(10), ge=0)
        #: judge endpoints whose model had no request in the window as idle (default: not judged)
        count_unseen_traffic: bool = False

    def find(self, ctx: RuleContext) -> Iterable[Finding]:
        o = self.options
        wl = ctx.workloads()
        pools = ctx.pool_costs()
        timeout_us = int(o.idle_timeout_minutes * 60 * 1_000_000)
        cold_us = int(o.cold_start_seconds * 1_000_000)
        rows = ctx.rows(f"""
WITH e AS (
  SELECT model, {model_key_sql('model')} AS model_key, sum(cost) AS cost, sum(gpu_hours) AS gpu_hours,
         count(*) AS workloads, mode(team) AS team,
         mode(gpu_model) AS gpu_model, list(DISTINCT coalesce(namespace, '') || '/' || coalesce(owner_name, name))
           AS owners
  FROM {wl} WHERE serving GROUP BY model
), spans AS (
  -- each serving workload's running interval in the window
  SELECT model, epoch_us(greatest(coalesce(start_ts, $start::TIMESTAMP), $start::TIMESTAMP)) AS a,
         epoch_us(least(coalesce(end_ts, $end::TIMESTAMP), $end::TIMESTAMP)) AS b
  FROM {wl} WHERE serving
), islands AS (
  -- gaps and islands: an interval that starts after every earlier one ended opens a new island
  SELECT model, a, b, sum(CASE WHEN a > coalesce(prev_end, a - 1) THEN 1 ELSE 0 END)
                        OVER (PARTITION BY model ORDER BY a, b ROWS UNBOUNDED PRECEDING) AS island
  FROM (SELECT *, max(b) OVER (PARTITION BY model ORDER BY a, b ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                  AS prev_end FROM spans WHERE b > a)
), up AS (
  SELECT model, sum(b - a) AS up_us FROM (SELECT model, island, min(a) AS a, max(b) AS b FROM islands GROUP BY 1, 2)
  GROUP BY model
), keyed AS (
  SELECT {model_key_sql('coalesce(r.response_model, r.request_model)')} AS model_key, r.ts, r.requests
  FROM llm_requests r
  WHERE NOT r._superseded AND r.ts >= $start::TIMESTAMP AND r.ts < $end::TIMESTAMP
), req AS (
  SELECT e.model, epoch_us(k.ts) AS t, greatest(coalesce(k.requests, 1), 1) AS n
  FROM keyed k JOIN e USING (model_key)
), gaps AS (
  SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY model ORDER BY t) <= $timeout THEN 0 ELSE 1 END AS opens
  FROM req
), sess AS (
  SELECT *, sum(opens) OVER (PARTITION BY model ORDER BY t ROWS UNBOUNDED PRECEDING) AS session FROM gaps
), starts AS (
  SELECT *, min(t) OVER (PARTITION BY model, session) AS first_t FROM sess
), sessions AS (
  SELECT model, session, least(greatest(max(t), min(t) + $cold) + $timeout, epoch_us($end::TIMESTAMP)) - min(t)
           AS up_us,
         sum(n) AS requests, sum(n) FILTER (WHERE t < first_t + $cold) AS delayed
  FROM starts GROUP BY model, session
), replay AS (
  SELECT model, count(*) AS sessions, sum(up_us) AS replay_us, sum(requests) AS requests, sum(delayed) AS delayed
  FROM sessions GROUP BY model
)
SELECT e.*, u.up_us, coalesce(r.sessions, 0) AS sessions, coalesce(r.replay_us, 0) AS replay_us,
       coalesce(r.requests, 0) AS requests, coalesce(r.delayed, 0) AS delayed,
       (SELECT cost FROM {pools} p WHERE p.pool = 'endpoint:' || e.model) AS pool_cost
FROM e JOIN up u USING (model) LEFT JOIN replay r USING (model)
ORDER BY e.cost DESC""", {"timeout": timeout_us, "cold": cold_us})
        window_us = Decimal(repr(ctx.hours)) * 3600 * US
        for r in rows:
            finding = self._finding(ctx, r, window_us)
            if finding and finding.monthly_saving >= o.min_monthly_saving:
                yield finding

    def _finding(self, ctx: RuleContext, r: dict, window_us: Decimal) -> Finding | None:
        o = self.options
        cost, up_us, replay_us = Decimal(r["cost"] or 0), Decimal(r["up_us"] or 0), Decimal(r["replay_us"])
        if cost <= 0 or up_us <= 0 or window_us <= 0:
            return None
        up_share, busy_share = up_us / window_us, replay_us / window_us
        if up_share <= Decimal(repr(o.min_up_share)) or busy_share >= Decimal(repr(o.max_busy_share)):
            return None
        replay_us = min(replay_us, up_us)
        per_hour = cost / (up_us / US / 3600)
        saving = cost - cost * replay_us / up_us
        requests, sessions, delayed = int(r["requests"]), int(r["sessions"]), int(r["delayed"])
        if not requests and not o.count_unseen_traffic:
            return None
        delayed_share = delayed / requests if requests else 0.0
        confidence = ("low" if not requests else "medium" if delayed_share > o.max_cold_start_share else "high")
        model = r["model"]
        up_h, replay_h = float(up_us / US / 3600), float(replay_us / US / 3600)
        timeout, cold = o.idle_timeout_minutes, o.cold_start_seconds
        if requests:
            traffic = (f"replaying its {requests:,} request(s) of the window, it would have been up {replay_h:,.2f} h "
                       f"of {up_h:,.2f} h in {sessions:,} session(s): {sessions:,} cold start(s), {delayed:,} "
                       f"request(s) ({delayed_share:.1%}) waiting up to {cold:g} s")
        else:
            traffic = (f"no request of {model} was seen in the window: check that its traffic is ingested "
                       "before scaling it to zero")
        change = (f"Scale endpoint {model} to zero when idle: 0 replicas after {timeout:g} min without a request "
                  f"(KServe/Knative minReplicas: 0, or KEDA's HTTP add-on), ~{cold:g} s cold start; {traffic}")
        return Finding(
            rule=self.kind, scope_kind="endpoint", scope=model, owner=r["team"],
            evidence={"workloads": r["workloads"], "owners": sorted(r["owners"] or []), "gpu_model": r["gpu_model"],
                      "gpu_hours": round(float(r["gpu_hours"] or 0), 3), "up_hours": round(up_h, 3),
                      "up_share": round(float(up_share), 4), "cost_in_window": cost, "cost_per_hour": per_hour,
                      "requests": requests, "sessions": sessions, "replayed_up_hours": round(replay_h, 3),
                      "busy_share": round(float(busy_share), 4), "cold_start_requests": sessions,
                      "cold_start_share": round(sessions / requests, 4) if requests else None,
                      "delayed_requests": delayed, "delayed_share": round(delayed_share, 4),
                      "idle_timeout_minutes": timeout, "cold_start_seconds": cold},
            monthly_cost=ctx.monthly(cost), monthly_waste=ctx.monthly(saving), monthly_saving=ctx.monthly(saving),
            recommendation=change,
            assumptions=[f"the window's traffic ({ctx.window}) is typical of the endpoint",
                         f"while up, the endpoint costs what it did per hour in the window (${per_hour:,.4f}/h, all "
                         "replicas)",
                         "scaled to zero it costs nothing: its GPUs are released or reused",
                         f"a request arriving while it is down waits a {cold:g} s cold start; serving takes no "
                         "longer than that"],
            saving_formula=(f"${cost:,.2f} x (1 - {replay_h:,.3f} h replayed / {up_h:,.3f} h up) = ${saving:,.2f} in "
                            f"the window, x {ctx.month_factor:.4f} to a month"),
            confidence=confidence, pool=f"endpoint:{model}",
            pool_cost=ctx.monthly(r["pool_cost"] if r["pool_cost"] is not None else cost))
