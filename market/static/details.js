// "Your details": the customer record of this browser, read and saved
// through /api/customers/{id} with the version it was read at. A save
// that conflicts (the same field changed in another tab or on another
// replica) shows, per field, the value before, the one saved elsewhere and
// yours; the person picks, and the picks are saved on the current version.
// DOM calls and textContent only, never innerHTML.
(() => {
  const section = document.getElementById('details');
  if (!section) return;
  const $ = (id) => document.getElementById(id);
  const url = `/api/customers/${encodeURIComponent(section.dataset.customer)}`;
  // The session's CSRF token (not its cookie, which scripts can't read).
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';
  const fields = ['name', 'email', 'address'];
  const labels = { name: 'Name', email: 'Email', address: 'Shipping address' };
  const input = (field) => $(`details-${field}`);
  let version = null; // null until the record exists
  let conflict = null; // the 409 body being resolved

  const say = (text) => { $('details-state').textContent = text; };
  const el = (tag, text) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const shown = (value) => (value === null || value === undefined || value === '' ? '(empty)' : String(value));

  function fill(doc) {
    for (const field of fields) input(field).value = doc[field] ?? '';
    version = doc._version;
  }

  async function load() {
    const response = await fetch(url);
    if (response.status === 404) return say('Not saved yet.');
    const answer = await response.json().catch(() => null);
    if (!response.ok) return say(`Your details can't be read: ${answer?.error?.message ?? response.status}`);
    fill(answer);
    say(`Saved, version ${version}.`);
  }

  async function save(doc) {
    const response = await fetch(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(doc),
    });
    const answer = await response.json().catch(() => null);
    if (response.ok) {
      fill(answer);
      showConflict(null);
      return say(`Saved, version ${version}.`);
    }
    if (response.status === 409 && answer?.conflicts) {
      showConflict(answer);
      return say('Not saved: someone else changed the same fields.');
    }
    say(`Not saved: ${answer?.error?.message ?? `the market answered ${response.status}`}`);
  }

  function showConflict(body) {
    conflict = body;
    $('conflict').hidden = !body;
    $('details-form').hidden = !!body;
    if (!body) return;
    const rows = body.conflicts.map((c) => {
      const row = el('tr');
      row.dataset.field = c._key;
      const choice = (which, value) => {
        const cell = el('td');
        const label = el('label');
        const radio = el('input');
        radio.type = 'radio';
        radio.name = `pick-${c._key}`;
        radio.value = which;
        radio.checked = which === 'yours';
        label.append(radio, ` ${shown(value)}`);
        cell.append(label);
        return cell;
      };
      const name = el('th', labels[c._key] ?? c._key);
      name.scope = 'row';
      row.append(name, el('td', shown(c.base_value)), choice('ours', c.our_value), choice('yours', c.your_value));
      return row;
    });
    $('conflict-table').tBodies[0].replaceChildren(...rows);
  }

  // Fields in conflict take the pick; the others merge as the market
  // would: yours where you changed them, else what is saved.
  function resolved() {
    const { base, ours, yours } = conflict;
    const doc = { _version: ours._version };
    for (const field of fields) {
      const picked = document.querySelector(`input[name="pick-${field}"]:checked`);
      if (picked) doc[field] = picked.value === 'ours' ? ours[field] : yours[field];
      else doc[field] = yours[field] !== base[field] ? yours[field] : ours[field];
      if (doc[field] === undefined || doc[field] === null) doc[field] = '';
    }
    return doc;
  }

  $('details-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const doc = {};
    for (const field of fields) doc[field] = input(field).value;
    if (version !== null) doc._version = version;
    save(doc);
  });
  $('conflict-save').addEventListener('click', () => save(resolved()));
  $('conflict-discard').addEventListener('click', () => {
    fill(conflict.ours);
    showConflict(null);
    say(`Kept what was saved, version ${version}.`);
  });
  load().catch((e) => say(`Your details can't be read: ${e}`));
})();
