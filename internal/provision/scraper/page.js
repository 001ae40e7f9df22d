// page.js is evaluated in the page for every query of the scraper, as
// `(function)(op, args)`. It defines nothing global, so it leaves no trace a
// site could look for. A candidate is {css, text, not}: a CSS selector
// (Chromium supports :has() and the i attribute flag), and optional
// case-insensitive regular expressions that the element's normalized text
// (for inputs: value, aria-label or placeholder) must match / not match.
// Candidates are tried in order; the first candidate with a usable match
// wins, so the list is a priority list (Playwright's :has-text,
// :text-is and getByRole re-done in one place).
(function (op, a) {
  'use strict';
  const norm = (s) => String(s == null ? '' : s).replace(/\s+/g, ' ').trim();
  const isField = (el) => el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement;
  const label = (el) => {
    if (isField(el)) return norm(el.value || el.getAttribute('aria-label') || el.getAttribute('placeholder') || '');
    return norm(el.innerText || el.textContent || el.getAttribute('aria-label') || '');
  };
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    if (el.checkVisibility && !el.checkVisibility({ opacityProperty: true, visibilityProperty: true, contentVisibilityAuto: true })) return false;
    const st = getComputedStyle(el);
    if (st.display === 'none' || st.visibility === 'hidden' || st.visibility === 'collapse' || Number(st.opacity) === 0) return false;
    const r = el.getBoundingClientRect();
    return r.width >= 1 && r.height >= 1;
  };
  const enabled = (el) => !el.disabled && el.getAttribute('aria-disabled') !== 'true' && !el.closest('fieldset:disabled') && !el.closest('[inert]');
  const re = (src) => { try { return new RegExp(src, 'i'); } catch (e) { return null; } };
  const matches = (el, c) => {
    if (c.text) { const r = re(c.text); if (!r || !r.test(label(el))) return false; }
    if (c.not) { const r = re(c.not); if (r && r.test(label(el))) return false; }
    return true;
  };
  // resolve returns the usable elements of the first candidate that has any.
  const resolve = (cands, o) => {
    for (let i = 0; i < (cands || []).length; i++) {
      let els;
      try { els = Array.from(document.querySelectorAll(cands[i].css)); } catch (e) { continue; }
      els = els.filter((el) => matches(el, cands[i]) && (!o.visible || visible(el)) && (!o.enabled || enabled(el)));
      if (els.length) return { els, i };
    }
    return { els: [], i: -1 };
  };
  const pick = () => {
    const r = resolve(a.cands, { visible: a.visible !== false, enabled: !!a.enabled });
    return { el: r.els[a.nth || 0] || null, n: r.els.length, i: r.i };
  };
  const hitOK = (el, x, y) => {
    const hit = document.elementFromPoint(x, y);
    if (!hit) return false;
    if (hit === el || el.contains(hit)) return true;
    return !!(el.labels && Array.from(el.labels).some((l) => l.contains(hit)));
  };
  const setNative = (el, v) => {
    const proto = el instanceof HTMLTextAreaElement ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    const d = Object.getOwnPropertyDescriptor(proto, 'value');
    if (d && d.set) d.set.call(el, v); else el.value = v;
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
  };
  const captcha = () => {
    const out = { present: false, solved: false, kind: '' };
    const seen = (kind, solved) => {
      if (!out.present) out.kind = kind;
      out.present = true;
      if (solved) out.solved = true;
    };
    const ts = Array.from(document.querySelectorAll('input[name="cf-turnstile-response"], textarea[name="cf-turnstile-response"]'));
    const tsFrame = Array.from(document.querySelectorAll('iframe[src*="challenges.cloudflare.com"]')).some(visible);
    if (ts.length || tsFrame) seen('turnstile', ts.some((i) => i.value !== ''));
    const hc = Array.from(document.querySelectorAll('textarea[name="h-captcha-response"]'));
    const hcFrame = Array.from(document.querySelectorAll('iframe[src*="hcaptcha.com"]')).some(visible);
    if (hc.length || hcFrame) seen('hcaptcha', hc.some((t) => t.value.length > 20));
    const rc = Array.from(document.querySelectorAll('textarea[name="g-recaptcha-response"]'));
    const rcFrame = Array.from(document.querySelectorAll('iframe[src*="/recaptcha/"]')).some(visible);
    if (rc.length || rcFrame) seen('recaptcha', rc.some((t) => t.value.length > 20));
    return out;
  };

  switch (op) {
    case 'find': {
      // The usable element: its centre (after scrolling it into view), whether a
      // click there reaches it, and its state.
      const p = pick();
      if (!p.el) return { found: false, n: 0 };
      const el = p.el;
      if (a.scroll) el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
      const r = el.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      return {
        found: true, n: p.n, cand: p.i, x, y, w: r.width, h: r.height, hit: hitOK(el, x, y),
        tag: el.tagName.toLowerCase(), type: (el.getAttribute('type') || '').toLowerCase(),
        checked: !!el.checked, enabled: enabled(el), focused: document.activeElement === el,
      };
    }
    case 'value': {
      const p = pick();
      if (!p.el) return null;
      return isField(p.el) ? String(p.el.value).trim() : String(p.el.textContent || '').trim();
    }
    case 'valueIs': {
      const p = pick();
      return !!p.el && isField(p.el) && p.el.value === a.v;
    }
    case 'select': {
      const p = pick();
      if (!p.el) return false;
      p.el.focus();
      if (typeof p.el.select === 'function') p.el.select();
      return true;
    }
    case 'setValue': {
      const p = pick();
      if (!p.el || !isField(p.el)) return false;
      p.el.focus();
      setNative(p.el, a.v);
      return true;
    }
    case 'jsClick': {
      const p = pick();
      if (!p.el) return false;
      p.el.click();
      return true;
    }
    case 'text': {
      const r = re(a.re);
      return !!r && !!document.body && r.test(norm(document.body.innerText));
    }
    case 'alert': {
      const els = Array.from(document.querySelectorAll('[role="alert"], .cl-formFieldErrorText, [aria-live="assertive"], .error, .alert')).filter(visible);
      return norm(els.map((e) => e.innerText).join(' | ')).slice(0, 200);
    }
    case 'captcha':
      return captcha();
    case 'ready':
      return document.readyState;
  }
  throw new Error('page.js: unknown op ' + op);
})
