// A part's page: each modality's frame as a person sees it with the event's heatmap over it
// and the regions' boxes, the revision history; refreshed when the part gets a new revision.
'use strict';

(() => {
  const { el, fmt, time, latest, stateOf, scoreBar, modalities, connect } = window.mmad;
  const sampleId = decodeURIComponent(location.pathname.replace(/^\/parts\//, '').replace(/\/$/, ''));
  const api = `/api/parts/${encodeURIComponent(sampleId)}`;
  // a part found in the events topic by a search carries the window its revisions lie in (?from=&to=)
  const window_ = new URLSearchParams(location.search);
  const carried = new URLSearchParams([...window_].filter(([k]) => k === 'from' || k === 'to'));
  const q = (extra) => {
    const all = new URLSearchParams(carried);
    for (const [k, v] of Object.entries(extra ?? {})) all.set(k, v);
    const s = all.toString();
    return s === '' ? '' : `?${s}`;
  };
  let part = null;
  /** The revision shown: the latest unless one was picked in the history. */
  let picked = null;
  let shown = '';
  const urls = [];

  function current() {
    if (part === null) return null;
    return part.revisions.find((r) => r.revision === picked) ?? latest(part);
  }

  async function load() {
    const res = await fetch(`${api}${q()}`, { cache: 'no-store' });
    if (!res.ok) {
      document.getElementById('summary').replaceChildren(el('p', { class: 'error', 'data-testid': 'part-missing' }, await res.text()));
      return;
    }
    part = await res.json();
    render();
  }

  function render() {
    const rev = current();
    document.title = `${sampleId} — ${rev.verdict}`;
    document
      .getElementById('summary')
      .replaceChildren(
        el(
          'div',
          { class: `verdict-banner verdict-${rev.verdict}`, 'data-verdict': rev.verdict, 'data-revision': rev.revision, 'data-state': stateOf(rev) },
          el('span', { class: 'verdict' }, rev.verdict),
          el('span', { class: 'sample' }, part.sampleId),
          el('span', { class: `state state-${stateOf(rev)}` }, `revision ${rev.revision}, ${stateOf(rev)}`),
        ),
        el(
          'p',
          { class: 'facts' },
          scoreBar(rev),
          modalities(rev),
          ` ${part.line} / ${part.station} · captured ${time(rev.captureTime)} · model ${rev.model === null ? '–' : `${rev.model.id}@${rev.model.version}`} · ${rev.regions.length} region(s)`,
          rev.reason === null ? null : el('span', { class: 'reason' }, ` · ${rev.reason}`),
        ),
      );
    renderRevisions(rev);
    const key = `${rev.revision}/${document.getElementById('overlay').checked}`;
    if (key !== shown) {
      shown = key;
      renderFrames(rev);
    }
  }

  function renderRevisions(rev) {
    document.querySelector('#revisions tbody').replaceChildren(
      ...[...part.revisions].reverse().map((r) =>
        el(
          'tr',
          { class: `${r.revision === rev.revision ? 'selected' : ''} verdict-row-${r.verdict}`, 'data-revision': r.revision, 'data-state': stateOf(r), tabindex: 0 },
          el('td', { class: 'num' }, r.revision),
          el('td', {}, stateOf(r)),
          el('td', {}, el('span', { class: `pill verdict-${r.verdict}` }, r.verdict)),
          el('td', {}, `${fmt(r.score)} / ${fmt(r.threshold)}`),
          el('td', {}, r.model === null ? '–' : `${r.model.id}@${r.model.version}`),
          el('td', {}, r.modalitiesUsed.join(', ')),
          el('td', {}, r.modalitiesMissing.join(', ') || '–'),
          el('td', { class: 'num' }, r.regions.length),
          el('td', {}, time(r.producedAt)),
        ),
      ),
    );
    for (const row of document.querySelectorAll('#revisions tbody tr')) {
      const choose = () => {
        picked = Number(row.dataset.revision);
        if (picked === latest(part).revision) picked = null;
        render();
      };
      row.addEventListener('click', choose);
      row.addEventListener('keydown', (e) => e.key === 'Enter' && choose());
    }
  }

  function renderFrames(rev) {
    for (const u of urls.splice(0)) URL.revokeObjectURL(u);
    const overlay = document.getElementById('overlay').checked;
    const container = document.getElementById('frames');
    const order = ['rgb', 'ir', 'xyz', 'ct'];
    const sources = [...rev.sources].sort((a, b) => order.indexOf(a.modality) - order.indexOf(b.modality));
    if (sources.length === 0) {
      container.replaceChildren(el('p', { class: 'empty' }, 'this revision used no frame'));
      return;
    }
    // regions are in the pixels of the model's first input modality; frames of a part share one size
    const figures = sources.map((s) => figure(rev, s, overlay));
    container.replaceChildren(...figures.map((f) => f.node));
    for (const f of figures) void f.load();
  }

  function figure(rev, source, overlay) {
    const img = el('img', { alt: `${source.modality} frame`, class: 'frame-img' });
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'boxes');
    const caption = el('figcaption', {}, el('strong', {}, source.modality), ` ${source.topic}/${source.partition}@${source.offset}`);
    const legend = el('div', { class: 'legend' });
    const stage = el('div', { class: 'stage' }, img, svg);
    const node = el('figure', { class: 'frame loading', 'data-modality': source.modality }, stage, caption, legend);
    async function load() {
      const url = `${api}/revisions/${rev.revision}/frames/${source.modality}.png${q(overlay ? {} : { overlay: '0' })}`;
      const res = await fetch(url);
      node.classList.remove('loading');
      if (!res.ok) {
        node.classList.add('gone');
        node.dataset.status = String(res.status);
        stage.replaceChildren(el('p', { class: 'frame-error', 'data-testid': 'frame-error' }, await res.text()));
        if (overlay && rev.heatmap !== null) {
          const hm = await fetch(`${api}/revisions/${rev.revision}/heatmap.png${q()}`);
          if (hm.ok) {
            const u = URL.createObjectURL(await hm.blob());
            urls.push(u);
            stage.append(el('p', { class: 'small' }, 'the heatmap alone:'), el('img', { src: u, class: 'frame-img heat-only', alt: 'heatmap' }));
          }
        }
        return;
      }
      const [w, h] = (res.headers.get('x-frame-size') ?? '1x1').split('x').map(Number);
      const l = res.headers.get('x-frame-legend');
      if (l !== null) legend.textContent = decodeURIComponent(l);
      const u = URL.createObjectURL(await res.blob());
      urls.push(u);
      img.src = u;
      svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
      svg.setAttribute('preserveAspectRatio', 'none');
      if (overlay) {
        for (const r of rev.regions) {
          const box = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
          for (const [k, v] of Object.entries({ x: r.x, y: r.y, width: r.width, height: r.height })) box.setAttribute(k, String(v));
          box.setAttribute('class', 'region');
          const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
          title.textContent = `region ${r.width}×${r.height} at ${r.x},${r.y}: area ${r.area} px, peak ${fmt(r.peak)}`;
          box.append(title);
          svg.append(box);
        }
      }
      node.classList.add('loaded');
    }
    return { node, load };
  }

  document.getElementById('overlay').addEventListener('change', () => part !== null && render());
  connect({
    snapshot(s) {
      // on every (re)connection: whatever changed while away
      if (s.parts.some((p) => p.sampleId === sampleId)) void load();
      else if (part === null) void load();
    },
    part(p) {
      if (p.sampleId !== sampleId) return;
      part = p;
      render();
    },
  });
})();
