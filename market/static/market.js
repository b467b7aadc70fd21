// The live panel: Server-Sent Events from /api/events. Everything is built
// with DOM calls and textContent, never innerHTML, so nothing a server says
// can turn into markup.
(() => {
  const $ = (id) => document.getElementById(id);
  const labels = { closed: 'CLOSED', open: 'OPEN', half_open: 'HALF-OPEN' };
  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  };

  function renderStatus(status) {
    const reach = $('registry-state');
    reach.textContent = status.registry.reachable ? 'reachable' : 'UNREACHABLE, using last-known instances';
    reach.className = 'reach-' + status.registry.reachable;
    const last = status.last_served;
    $('last-served').textContent = last
      ? `${last.instance} (${last.thing}${last.attempts > 1 ? `, after ${last.attempts} attempts` : ''})`
      : 'nobody yet';
    const body = $('instances').tBodies[0];
    body.replaceChildren(...status.instances.map((i) => {
      const row = el('tr');
      row.dataset.instance = i.id;
      const name = el('th');
      name.scope = 'row';
      const where = el('span', i.address, 'fineprint');
      if (i.zone) where.append(' · zone ', el('span', i.zone, 'zone'));
      if (i.dc) where.append(' · site ', el('span', i.dc, 'site'));
      name.append(el('span', i.id, 'instance-name'), el('br'), where);
      if (i.last_error) name.append(el('div', i.last_error, 'error'));
      const breaker = el('span', labels[i.breaker] || i.breaker, `breaker breaker-${i.breaker}`);
      breaker.dataset.breaker = i.breaker;
      const state = el('td');
      state.append(breaker);
      const latency = i.latency_ms == null ? '–' : `${i.latency_ms.toFixed(1)} ms`;
      const share = i.share == null ? '–' : `${Math.round(i.share * 100)} %`;
      const load = i.reported_utilization == null ? '–' : `${Math.round(i.reported_utilization * 100)} %`;
      row.append(name, state, el('td', latency, 'latency'), el('td', String(i.learned_limit), 'limit'),
        el('td', load, 'load'), el('td', share, 'share'),
        el('td', String(i.successes)), el('td', String(i.failures)));
      return row;
    }));
    $('no-instances').hidden = status.instances.length > 0;
  }

  function describe(e) {
    const at = `[ratings at ${e.address}]`;
    switch (e.kind) {
      case 'breaker_opened':
        return [`OPEN breaker on ${at} (${e.id}) for ${Math.round(e.open_for_ms / 1000)} s: ${e.error}`, 'ev-open'];
      case 'breaker_half_opened': return [`HALF-OPEN breaker on ${at} (${e.id}): the next request probes it`, 'ev-half'];
      case 'breaker_closed': return [`CLOSE breaker on ${at} (${e.id})`, 'ev-close'];
      case 'instance_added': return [`added ${e.id} at ${e.address}`, ''];
      case 'instance_removed': return [`removed ${e.id} (${e.address})`, ''];
      case 'registry_lost': return [`registry unreachable: ${e.error}`, 'ev-open'];
      case 'registry_regained': return ['registry reachable again', 'ev-close'];
      default: return [e.kind, ''];
    }
  }

  function logEvent(e) {
    const [text, className] = describe(e);
    const time = new Date(e.at_ms).toLocaleTimeString([], { hour12: false });
    const item = el('li', `${time} ${text}`, className);
    item.dataset.kind = e.kind;
    const list = $('events');
    list.prepend(item);
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  const source = new EventSource('/api/events');
  source.addEventListener('status', (m) => renderStatus(JSON.parse(m.data)));
  source.addEventListener('beacon', (m) => logEvent(JSON.parse(m.data)));
  source.onopen = () => { $('live-state').textContent = 'Live: updates as they happen.'; };
  source.onerror = () => { $('live-state').textContent = 'Live updates lost; reconnecting…'; };
})();
