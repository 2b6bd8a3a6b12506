// The search page: parts by sample id, time range (the events' timestamps) and verdict, in the
// view's memory or read back from the events topic; each result opens on the part page.
'use strict';

(() => {
  const { el, fmt } = window.mmad;
  const form = document.getElementById('search-form');
  const input = { sampleId: document.getElementById('q-sample'), from: document.getElementById('q-from'), to: document.getElementById('q-to'), nok: document.getElementById('q-nok') };

  const pad = (n) => String(n).padStart(2, '0');
  /** Epoch ms as a datetime-local value (the browser's time zone). */
  function local(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  const stamp = (ms) => new Date(ms).toLocaleString([], { hour12: false });

  /** The query in the page's own URL (epoch ms), so a search can be linked and reloaded. */
  function fromForm() {
    const p = new URLSearchParams();
    if (input.sampleId.value.trim() !== '') p.set('sampleId', input.sampleId.value.trim());
    for (const k of ['from', 'to']) if (input[k].value !== '') p.set(k, String(new Date(input[k].value).getTime()));
    if (input.nok.checked) p.set('nok', '1');
    return p;
  }

  function toForm(p) {
    input.sampleId.value = p.get('sampleId') ?? '';
    for (const k of ['from', 'to']) input[k].value = p.has(k) ? local(Number(p.get(k))) : '';
    input.nok.checked = p.get('nok') === '1';
  }

  async function run(p) {
    const summary = document.getElementById('summary');
    const notices = document.getElementById('notices');
    const body = document.querySelector('#results tbody');
    summary.textContent = 'searching…';
    summary.dataset.state = 'searching';
    notices.replaceChildren();
    body.replaceChildren();
    const res = await fetch(`/api/search?${p}`, { cache: 'no-store' });
    if (!res.ok) {
      summary.dataset.state = 'error';
      summary.textContent = '';
      notices.replaceChildren(el('p', { class: 'error' }, await res.text()));
      return;
    }
    const r = await res.json();
    notices.replaceChildren(...r.notices.map((n) => el('p', { class: 'notice', 'data-testid': 'notice' }, n)));
    const where = r.source === 'memory' ? 'in the view\'s memory' : `${r.scanned} event(s) read from the events topic`;
    summary.textContent = `${r.hits.length} part(s)${r.truncated ? `, more matched: the first ${r.maxResults} are shown, narrow the search` : ''}; ${where}`;
    summary.dataset.state = 'done';
    summary.dataset.truncated = String(r.truncated);
    body.replaceChildren(
      ...(r.hits.length === 0
        ? [el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'no part found'))]
        : r.hits.map((h) =>
            el(
              'tr',
              { class: `verdict-row-${h.verdict}`, 'data-sample-id': h.sampleId, 'data-verdict': h.verdict },
              el('td', {}, el('a', { href: h.href, class: 'part-link' }, h.sampleId)),
              el('td', {}, el('span', { class: `pill verdict-${h.verdict}` }, h.verdict)),
              el('td', { class: 'num' }, `${h.revision}${h.final ? '' : ' (provisional)'}`),
              el('td', {}, `${fmt(h.score)} / ${fmt(h.threshold)}`),
              el('td', {}, `${h.line} / ${h.station}`),
              el('td', {}, stamp(h.captureTime)),
              el('td', {}, stamp(h.lastAt)),
              el('td', {}, h.inMemory ? 'in memory' : 'events topic'),
            ),
          )),
    );
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = fromForm();
    history.replaceState(null, '', `/search?${p}`);
    void run(p);
  });
  const initial = new URLSearchParams(location.search);
  if ([...initial].length > 0) {
    toForm(initial);
    void run(initial);
  }
})();
