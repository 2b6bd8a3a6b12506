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

  connect({
    snapshot(s) {
      limits = s.limits;
      parts = new Map(s.parts.map((p) => [p.sampleId, p]));
      alerts = s.alerts;
      deadLetters = s.deadLetters;
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
    deadletter({ deadLetter, counts }) {
      deadLetters = { counts, recent: [deadLetter, ...deadLetters.recent].slice(0, limits.maxDeadLetters) };
      renderDeadLetters();
    },
  });
})();
