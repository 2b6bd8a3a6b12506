// Helpers shared by the live page and the part page. No framework: elements are built
// with textContent (never innerHTML), so nothing a record carries is read as markup.
'use strict';

window.mmad = (() => {
  /** An element with attributes (a `class` string, `data-*`, others) and children (nodes or text). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function fmt(n) {
    if (n === null || n === undefined) return '–';
    return Math.abs(n) >= 100 ? n.toFixed(0) : n.toPrecision(3);
  }

  function time(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  function latest(part) {
    return part.revisions[part.revisions.length - 1];
  }

  /** provisional (more may come), refined (a later revision), or final. */
  function stateOf(rev) {
    if (!rev.final) return 'provisional';
    return rev.revision > 1 ? 'refined' : 'final';
  }

  /** The score against the threshold: a bar whose mark is the threshold. */
  function scoreBar(rev) {
    const bar = el('span', { class: 'score', title: `score ${fmt(rev.score)}, threshold ${fmt(rev.threshold)}` });
    if (rev.score === null || rev.threshold === null || !(rev.threshold > 0)) {
      bar.append(el('span', { class: 'score-text' }, rev.reason ?? 'no score'));
      return bar;
    }
    const ratio = rev.score / rev.threshold;
    const fill = el('span', { class: `score-fill ${ratio >= 1 ? 'over' : 'under'}` });
    fill.style.width = `${Math.min(100, (ratio / 2) * 100)}%`;
    bar.append(el('span', { class: 'score-track' }, fill, el('span', { class: 'score-mark' })), el('span', { class: 'score-text' }, `${fmt(rev.score)} / ${fmt(rev.threshold)}`));
    return bar;
  }

  function modalities(rev) {
    return el(
      'span',
      { class: 'modalities' },
      rev.modalitiesUsed.map((m) => el('span', { class: 'mod used', title: `${m} used` }, m)),
      rev.modalitiesMissing.map((m) => el('span', { class: 'mod missing', title: `${m} missing` }, m)),
    );
  }

  function partHref(sampleId) {
    return `/parts/${encodeURIComponent(sampleId)}`;
  }

  /** Opens the event stream; `handlers[event](data)`; shows the connection state in #connection. */
  function connect(handlers) {
    const badge = document.getElementById('connection');
    const source = new EventSource('/events');
    const set = (state, text) => {
      if (badge === null) return;
      badge.dataset.state = state;
      badge.textContent = text;
    };
    source.onopen = () => set('live', 'live');
    source.onerror = () => set('down', 'reconnecting…');
    for (const [event, handle] of Object.entries(handlers)) {
      source.addEventListener(event, (m) => handle(JSON.parse(m.data)));
    }
    return source;
  }

  return { el, fmt, time, latest, stateOf, scoreBar, modalities, partHref, connect };
})();
