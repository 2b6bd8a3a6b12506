// The live page: the latest parts, NOK parts, alerts and dead letters, kept current by the
// server's event stream (a snapshot on every (re)connection, then each change).
'use strict';

(() => {
  const { el, fmt, time, latest, stateOf, scoreBar, modalities, partHref, connect } = window.mmad;
  /** sampleId → part, in the server's order (newest first). */
  let parts = new Map();
  let alerts = [];
  let deadLetters = { counts: [], recent: [] };
  let limits = { maxParts: 200, maxAlerts: 100, maxDeadLetters: 50 };
  const STRIP = 40;
  let health = null;

  function card(part) {
    const rev = latest(part);
    const state = stateOf(rev);
    return el(
      'a',
      { class: `card verdict-${rev.verdict}`, href: partHref(part.sampleId), 'data-sample-id': part.sampleId, 'data-verdict': rev.verdict, 'data-state': state, 'data-revision': rev.revision },
      el('span', { class: 'card-head' }, el('span', { class: 'verdict' }, rev.verdict), el('span', { class: `state state-${state}` }, state === 'final' ? '' : state)),
      el('span', { class: 'sample' }, part.sampleId),
      scoreBar(rev),
      modalities(rev),
      el('span', { class: 'when' }, `rev ${rev.revision} · ${time(rev.producedAt)}`),
    );
  }

  function renderStrip() {
    const strip = document.getElementById('strip');
    const list = [...parts.values()].slice(0, STRIP);
    strip.replaceChildren(...(list.length === 0 ? [el('p', { class: 'empty' }, 'no parts yet')] : list.map(card)));
    const nok = [...parts.values()].filter((p) => latest(p).verdict === 'NOK');
    document
      .getElementById('nok')
      .replaceChildren(
        ...(nok.length === 0
          ? [el('li', { class: 'empty' }, 'none')]
          : nok.map((p) => {
              const rev = latest(p);
              return el(
                'li',
                { 'data-sample-id': p.sampleId },
                el('a', { href: partHref(p.sampleId) }, p.sampleId),
                ` score ${fmt(rev.score)} / ${fmt(rev.threshold)} · ${rev.regions.length} region(s) · ${rev.modalitiesUsed.join('+')} · ${stateOf(rev)}`,
              );
            })),
      );
    const counts = { OK: 0, NOK: 0, UNKNOWN: 0 };
    for (const p of parts.values()) counts[latest(p).verdict]++;
    document.getElementById('totals').textContent = `last ${parts.size} parts: ${counts.OK} OK · ${counts.NOK} NOK · ${counts.UNKNOWN} UNKNOWN`;
  }

  function renderAlerts() {
    document
      .getElementById('alerts')
      .replaceChildren(
        ...(alerts.length === 0
          ? [el('li', { class: 'empty' }, 'none')]
          : alerts.map((a) =>
              el(
                'li',
                { class: `alert severity-${a.severity}`, 'data-sample-id': a.sampleId },
                el('span', { class: 'severity' }, a.severity),
                ' ',
                el('a', { href: partHref(a.sampleId) }, a.sampleId),
                ` rev ${a.revision} · ${fmt(a.score)} ≥ ${fmt(a.threshold)} · ${a.modelId} · ${time(a.producedAt)}`,
              ),
            )),
      );
  }

  function renderDeadLetters() {
    const body = document.querySelector('#dl-counts tbody');
    body.replaceChildren(
      ...(deadLetters.counts.length === 0
        ? [el('tr', {}, el('td', { colspan: 2, class: 'empty' }, 'none'))]
        : deadLetters.counts.map((c) => el('tr', { 'data-reason': c.reason }, el('td', {}, c.reason), el('td', { class: 'num' }, c.count)))),
    );
    document
      .getElementById('dl-recent')
      .replaceChildren(
        ...deadLetters.recent.slice(0, 10).map((d) =>
          el(
            'li',
            { 'data-reason': d.reasonCode },
            el('span', { class: 'reason' }, d.reasonCode),
            ` ${d.sampleId ?? '(no sample id)'} ${d.modality ?? ''} · ${d.source.topic}/${d.source.partition}@${d.source.offset} · ${time(d.producedAt)}`,
            el('span', { class: 'message' }, d.message),
          ),
        ),
      );
  }

  const pct = (share) => `${Math.round(share * 100)}%`;
  const ms = (v) => (v === null || v === undefined ? '–' : `${Math.round(v)} ms`);

  function renderHealth() {
    if (health === null) return;
    const { window: w, coverage, latency, lag } = health;
    document.getElementById('health-window').textContent = `(over the last ${w.parts} parts this view keeps, at most ${w.maxParts})`;
    document
      .querySelector('#coverage tbody')
      .replaceChildren(
        ...(coverage.length === 0
          ? [el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'no parts yet'))]
          : coverage.map((c) =>
              el('tr', { 'data-modality': c.modality, 'data-used': c.used, 'data-missing': c.missing }, el('td', {}, c.modality), el('td', { class: 'num' }, pct(c.used)), el('td', { class: 'num' }, pct(c.missing))),
            )),
      );
    document
      .querySelector('#latency tbody')
      .replaceChildren(
        latency.events === 0
          ? el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'no events yet'))
          : el('tr', { 'data-p50': latency.p50, 'data-p90': latency.p90, 'data-p99': latency.p99 }, el('td', { class: 'num' }, ms(latency.p50)), el('td', { class: 'num' }, ms(latency.p90)), el('td', { class: 'num' }, ms(latency.p99))),
      );
    document.getElementById('latency-note').textContent = `over ${latency.events} events (every revision kept of those parts); the events' own end to end: the part's first frame arriving at the service → the event published`;
    const summary = document.getElementById('lag-summary');
    const topics = document.querySelector('#lag-topics tbody');
    summary.dataset.state = lag === null ? 'unread' : lag.state;
    if (lag === null) {
      summary.textContent = 'not read yet';
      topics.replaceChildren();
    } else if (lag.state === 'no-group') {
      summary.textContent = `group ${lag.groupId} does not exist yet (the service has not started or committed) · ${time(lag.at)}`;
      topics.replaceChildren();
    } else if (lag.state === 'error') {
      summary.textContent = `could not read the lag of ${lag.groupId}: ${lag.message} · ${time(lag.at)}`;
      topics.replaceChildren();
    } else {
      summary.dataset.total = lag.total;
      summary.textContent = `${lag.total} records behind in total (group ${lag.groupId}) · ${time(lag.at)}`;
      topics.replaceChildren(
        ...lag.topics.map((t) =>
          el('tr', { 'data-topic': t.topic, 'data-lag': t.lag }, el('td', {}, t.topic), el('td', { class: 'num' }, t.uncommitted > 0 ? `${t.lag} (${t.uncommitted} partition(s) never committed)` : t.lag)),
        ),
      );
    }
  }

  connect({
    snapshot(s) {
      limits = s.limits;
      parts = new Map(s.parts.map((p) => [p.sampleId, p]));
      alerts = s.alerts;
      deadLetters = s.deadLetters;
      health = s.health;
      renderHealth();
      renderStrip();
      renderAlerts();
      renderDeadLetters();
    },
    part(p) {
      parts.delete(p.sampleId);
      parts = new Map([[p.sampleId, p], ...parts]);
      renderStrip();
    },
    forget({ sampleId }) {
      parts.delete(sampleId);
      renderStrip();
    },
    alert(a) {
      alerts = [a, ...alerts].slice(0, limits.maxAlerts);
      renderAlerts();
    },
    health(h) {
      health = h;
      renderHealth();
    },
    deadletter({ deadLetter, counts }) {
      deadLetters = { counts, recent: [deadLetter, ...deadLetters.recent].slice(0, limits.maxDeadLetters) };
      renderDeadLetters();
    },
  });
})();
