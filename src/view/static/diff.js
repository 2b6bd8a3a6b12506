// The diff page: a replay's output beside the live run (/api/diff: diffRuns over the last
// revision of each part), the counts as `mmad diff` prints them, the verdict transitions, and
// the parts whose verdict changed, each linking to its live part page.
'use strict';

(() => {
  const { el, fmt } = window.mmad;

  const side = (e) => [
    el('td', {}, el('span', { class: `pill verdict-${e.verdict}` }, e.verdict)),
    el('td', {}, `${fmt(e.score)} / ${fmt(e.threshold)}`),
    el('td', {}, e.model ?? '–'),
    el('td', { class: 'num' }, `${e.revision}${e.final ? '' : ' (provisional)'}`),
  ];

  async function load() {
    const counts = document.getElementById('counts');
    const notices = document.getElementById('notices');
    counts.dataset.state = 'loading';
    const res = await fetch('/api/diff', { cache: 'no-store' });
    if (!res.ok) {
      counts.dataset.state = 'error';
      counts.replaceChildren(el('p', { class: 'error' }, await res.text()));
      return;
    }
    const d = await res.json();
    const c = d.counts;
    notices.replaceChildren(...d.notices.map((n) => el('p', { class: 'notice', 'data-testid': 'notice' }, n)));
    counts.replaceChildren(
      el('p', { 'data-testid': 'parts' }, `parts: ${c.partsLive} in live, ${c.partsReplay} in replay, ${c.both} in both (${c.onlyLive} only in live, ${c.onlyReplay} only in replay)`),
      el('p', { 'data-testid': 'decisions' }, `same decision: ${c.identical}; same verdict, other score/model/modalities: ${c.sameVerdictDifferent}; verdict changed: ${c.changed}`),
      c.meanAbsScoreDelta === null ? null : el('p', {}, `mean |score change|: ${c.meanAbsScoreDelta.toPrecision(3)}`),
      el('p', {}, `${d.replay.events} replay event(s) from ${d.replay.source}; ${d.live.scanned} live event(s) read from ${d.live.topic}${d.live.complete ? '' : ' (cut short)'}`),
    );
    counts.dataset.state = 'done';
    counts.dataset.changed = String(c.changed);

    const verdicts = [...new Set(d.transitions.flatMap((t) => [t.live, t.replay]))].sort();
    const cell = (a, b) => d.transitions.find((t) => t.live === a && t.replay === b)?.parts ?? 0;
    document.querySelector('#transitions thead tr').replaceChildren(el('th', {}, 'live \\ replay'), ...verdicts.map((v) => el('th', {}, v)));
    document.querySelector('#transitions tbody').replaceChildren(
      ...verdicts.map((a) => el('tr', {}, el('th', {}, a), ...verdicts.map((b) => el('td', { class: `num${a === b ? '' : ' changed'}` }, String(cell(a, b)))))),
    );

    document.querySelector('#changed tbody').replaceChildren(
      ...(d.changed.length === 0
        ? [el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'no verdict changed'))]
        : d.changed.map((p) =>
            el(
              'tr',
              { 'data-sample-id': p.sampleId, 'data-live': p.live.verdict, 'data-replay': p.replay.verdict },
              el('td', {}, el('a', { href: p.href, class: 'part-link' }, p.sampleId)),
              ...side(p.live),
              ...side(p.replay),
            ),
          )),
      ...(c.changed > d.changed.length ? [el('tr', {}, el('td', { colspan: 9, class: 'empty' }, `${c.changed - d.changed.length} more not listed`))] : []),
    );
  }

  document.getElementById('reload').addEventListener('click', () => void load());
  void load();
})();
