// The defai dashboard: polls the control API every second and draws what it answers.
// The token comes in the URL fragment (#token=...), which browsers never send to a server; it is
// moved into sessionStorage (this tab only) and removed from the address bar.
'use strict';
(function () {
  const KEY = 'defai-api-token';
  const REFRESH_MS = 1000;
  const SVG = 'http://www.w3.org/2000/svg';
  const cards = new Map();
  let token = null;

  function takeToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
      history.replaceState(null, '', location.pathname + location.search);
    }
    return sessionStorage.getItem(KEY);
  }

  class AuthError extends Error {}

  async function api(path, init) {
    const opts = Object.assign({ cache: 'no-store' }, init || {});
    opts.headers = Object.assign({ Authorization: 'Bearer ' + token }, opts.headers || {});
    const res = await fetch(path, opts);
    if (res.status === 401) throw new AuthError('the API refused the token');
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || ('HTTP ' + res.status));
    return body;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(x, digits) {
    return (typeof x === 'number' && isFinite(x)) ? x.toFixed(digits === undefined ? 2 : digits) : '—';
  }

  function when(ts) {
    if (typeof ts !== 'number' || ts <= 0) return '—';
    return new Date(ts * 1000).toISOString().replace('T', ' ').slice(0, 19);
  }

  function setConn(text, error) {
    const c = document.getElementById('conn');
    c.textContent = text;
    c.className = error ? 'error' : '';
  }

  function card(name) {
    let c = cards.get(name);
    if (c) return c;
    const root = el('section', { class: 'agent', id: 'agent-' + name, 'data-agent': name });
    const top = el('div', { class: 'top' });
    const title = el('h2', {}, name);
    const meta = el('span', { class: 'meta' });
    const state = el('span', { class: 'state', id: 'state-' + name, 'data-state': '' }, '…');
    const reason = el('span', { class: 'reason', id: 'reason-' + name });
    const equity = el('span', { class: 'equity', id: 'equity-' + name, 'data-equity': '' }, '—');
    const actions = el('span', { class: 'actions' });
    const resume = el('button', { type: 'button', id: 'resume-' + name }, 'Resume');
    const kill = el('button', { type: 'button', class: 'kill', id: 'kill-' + name }, 'Kill');
    actions.append(resume, kill);
    top.append(title, meta, state, reason, equity, actions);
    const stats = el('div', { class: 'stats', id: 'stats-' + name });
    const grid = el('div', { class: 'grid' });
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', 'curve');
    svg.setAttribute('id', 'curve-' + name);
    svg.setAttribute('viewBox', '0 0 600 180');
    svg.setAttribute('preserveAspectRatio', 'none');
    const line = document.createElementNS(SVG, 'polyline');
    const hi = document.createElementNS(SVG, 'text');
    hi.setAttribute('x', '4'); hi.setAttribute('y', '12');
    const lo = document.createElementNS(SVG, 'text');
    lo.setAttribute('x', '4'); lo.setAttribute('y', '176');
    svg.append(line, hi, lo);
    const posBox = el('div');
    posBox.append(el('table', { id: 'positions-' + name }));
    grid.append(svg, posBox);
    const decBox = el('div', { class: 'decisions' });
    const dec = el('table', { id: 'decisions-' + name });
    decBox.append(dec);
    root.append(top, stats, grid, decBox);
    document.getElementById('agents').append(root);
    kill.addEventListener('click', () => command('/kill', name));
    resume.addEventListener('click', () => command('/resume', name));
    c = { root, meta, state, reason, equity, stats, line, hi, lo, kill, resume, positions: posBox.firstChild, decisions: dec };
    cards.set(name, c);
    return c;
  }

  async function command(path, agent) {
    const what = path === '/kill' ? 'Halt' : 'Resume';
    const who = agent ? 'agent “' + agent + '”' : 'EVERY agent of this process';
    if (!window.confirm(what + ' ' + who + '?' + (path === '/kill' ? ' Nothing will trade until it is resumed.' : ''))) return;
    const body = { reason: 'dashboard: ' + what.toLowerCase() + ' button' };
    if (agent) body.agent = agent;
    try {
      await api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      setConn(what + ' sent to ' + who + '; the agent applies it at its next cycle', false);
    } catch (e) {
      setConn(what + ' failed: ' + e.message, true);
    }
  }

  function renderStatus(a) {
    const c = card(a.name);
    c.meta.textContent = [a.mode, a.strategy, a.phase].filter(Boolean).join(' · ');
    const st = a.kill_switch.state + (a.kill_switch.flattening ? ' (flattening)' : '');
    c.state.textContent = st;
    c.state.setAttribute('data-state', a.kill_switch.state);
    c.reason.textContent = a.kill_switch.reason || '';
    c.equity.textContent = fmt(a.equity);
    c.equity.setAttribute('data-equity', typeof a.equity === 'number' ? String(a.equity) : '');
    c.kill.disabled = a.kill_switch.state === 'halted';
    c.resume.disabled = a.kill_switch.state === 'active' && !a.kill_switch.flattening;
    const k = a.counters;
    c.stats.replaceChildren();
    const stat = (label, value) => {
      const s = el('span', {}, label + ' ');
      s.append(el('b', {}, String(value)));
      c.stats.append(s);
    };
    stat('return', a.return_pct === null ? '—' : fmt(a.return_pct) + ' %');
    stat('bars', a.bars);
    stat('last bar', when(a.last_ts));
    stat('price', fmt(a.last_price));
    stat('intents', k.intents);
    stat('approved', k.approved);
    stat('resized', k.resized);
    stat('refused', k.refused);
    stat('fills', k.fills);
    stat('failures', k.execution_failures);
    if (a.error) stat('error', a.error);
  }

  function renderCurve(e) {
    const c = card(e.agent);
    const pts = e.points;
    if (!pts.length) { c.line.setAttribute('points', ''); return; }
    let t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    if (t1 === t0) t1 = t0 + 1;
    const pad = (hi - lo) * 0.05 || Math.abs(hi) * 0.001 || 1;
    const y0 = lo - pad, y1 = hi + pad;
    const xy = pts.map(p => ((p[0] - t0) / (t1 - t0) * 600).toFixed(1) + ',' +
      (180 - (p[1] - y0) / (y1 - y0) * 180).toFixed(1));
    c.line.setAttribute('points', xy.join(' '));
    c.hi.textContent = 'max ' + fmt(hi);
    c.lo.textContent = 'min ' + fmt(lo) + ' · ' + e.marks + ' bars';
  }

  function renderPositions(p) {
    const t = card(p.agent).positions;
    t.replaceChildren();
    const head = el('tr');
    head.append(el('th', {}, 'token'), el('th', {}, 'amount'), el('th', {}, 'units'));
    t.append(head);
    for (const row of p.positions) {
      const tr = el('tr');
      tr.append(el('td', {}, row.token), el('td', { class: 'num' }, row.amount), el('td', { class: 'num' }, row.units));
      t.append(tr);
    }
    if (!p.positions.length) {
      const tr = el('tr');
      tr.append(el('td', { class: 'empty', colspan: '3' }, 'no balances reported yet'));
      t.append(tr);
    }
  }

  function renderDecisions(list) {
    const by = new Map();
    for (const d of list) {
      if (!by.has(d.agent)) by.set(d.agent, []);
      by.get(d.agent).push(d);
    }
    for (const [name, c] of cards) {
      const t = c.decisions;
      t.replaceChildren();
      const head = el('tr');
      for (const h of ['time', 'intent', 'model', 'verdict', 'outcome']) head.append(el('th', {}, h));
      t.append(head);
      for (const d of by.get(name) || []) {
        const tr = el('tr');
        const v = d.verdict;
        const verdict = v ? v.verdict + (v.reason ? ' (' + v.reason + ')' : '') : 'pending';
        let outcome = '';
        if (d.outcome && d.outcome.status === 'filled') {
          outcome = 'filled: ' + d.outcome.sold + ' → ' + d.outcome.bought + (d.outcome.tx_hash ? ' tx ' + d.outcome.tx_hash : '');
        } else if (d.outcome) {
          outcome = 'failed: ' + d.outcome.error;
        }
        const model = d.model ? d.model.action + ' (' + fmt(d.model.output, 3) + ')' : '';
        const vcell = el('td', { class: v ? 'v-' + v.verdict : '', title: (v && v.detail) || '' }, verdict);
        tr.append(el('td', { title: d.id }, when(d.ts)), el('td', {}, d.intent), el('td', {}, model), vcell, el('td', {}, outcome));
        t.append(tr);
      }
    }
  }

  async function refresh() {
    try {
      const [status, equity, positions, decisions] = await Promise.all([
        api('/status'), api('/equity'), api('/positions'), api('/decisions?limit=200'),
      ]);
      for (const a of status.agents) renderStatus(a);
      for (const e of equity.agents) renderCurve(e);
      for (const p of positions.agents) renderPositions(p);
      renderDecisions(decisions.decisions);
      if (!status.agents.length) setConn('no agents in this process', false);
      else if (!/sent|failed/.test(document.getElementById('conn').textContent)) {
        setConn('live · pid ' + status.pid + ' · updated ' + new Date().toLocaleTimeString(), false);
      }
    } catch (e) {
      if (e instanceof AuthError) {
        sessionStorage.removeItem(KEY);
        token = null;
        showLogin('the token was refused: paste the current one');
        return;
      }
      setConn('API unreachable: ' + e.message + ' (is the agent still running?)', true);
    }
    setTimeout(refresh, REFRESH_MS);
  }

  function showLogin(msg) {
    document.getElementById('login').hidden = false;
    setConn(msg, true);
  }

  let cleaner = null;
  function start() {
    document.getElementById('login').hidden = true;
    refresh();
    if (cleaner !== null) return;
    // Clear a command's message after a while so the live line comes back.
    cleaner = setInterval(() => {
      const c = document.getElementById('conn');
      if (/sent|failed/.test(c.textContent)) c.textContent = '';
    }, 8000);
  }

  document.getElementById('login').addEventListener('submit', ev => {
    ev.preventDefault();
    const v = document.getElementById('token-input').value.trim();
    if (!v) return;
    sessionStorage.setItem(KEY, v);
    token = v;
    start();
  });
  document.getElementById('kill-all').addEventListener('click', () => command('/kill', null));

  token = takeToken();
  if (token) start(); else showLogin('no API token');
})();
