// Station-facing words: the verdict lines of `status` and what the resend script tells a cashier,
// in English, Russian and Ukrainian (`lang:` in the config). Logs and JSON stay English. Times a
// person reads are local, with the UTC offset said once per screen.
import type { Lang } from './config.js';
import type { Reason, RouteVerdict } from './verdict.js';

// ---- time ---------------------------------------------------------------------------------------

const pad = (n: number) => String(n).padStart(2, '0');

/** `+02:00` for this machine's zone at that instant. */
export function utcOffset(ms: number): string {
  const off = -new Date(ms).getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  return `${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

/** `2026-12-01 03:02:07 +02:00`: local time with its offset. */
export function localTime(ms: number, withSeconds = true): string {
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}${withSeconds ? `:${pad(d.getSeconds())}` : ''}`;
  return `${date} ${time} ${utcOffset(ms)}`;
}

/** `03:02` today, `2026-11-30 03:02` another day (local; the screen says the offset once). */
export function shortTime(ms: number, now: number): string {
  const d = new Date(ms);
  const n = new Date(now);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const sameDay = d.getFullYear() === n.getFullYear() && d.getMonth() === n.getMonth() && d.getDate() === n.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

// ---- words --------------------------------------------------------------------------------------

type Plural = Record<Intl.LDMLPluralRule, string> | { one: string; other: string };

function plural(lang: Lang, n: number, forms: Plural): string {
  const rule = new Intl.PluralRules(lang).select(n);
  const f = forms as Partial<Record<Intl.LDMLPluralRule, string>>;
  return f[rule] ?? f.other ?? f.many ?? '';
}

interface Words {
  packages: Plural;
  files: Plural;
  notSending: string;
  notReceiving: string;
  since: string;
  waiting: (n: string, oldest: string) => string;
  dead: (n: string) => string;
  deadHint: string;
  quarantined: (n: string) => string;
  refused: (n: string) => string;
  stuck: (n: string, over: string) => string;
  /** Sent, no receipt from the office within confirmWithin (n: "3 packages", over: "2 h"). */
  unconfirmed: (n: string, over: string) => string;
  attention: string;
  ok: string;
  lastSuccess: string;
  notRunYet: string;
  working: (pid: number, since: string) => string;
  hours: Plural;
  minutes: Plural;
  days: Plural;
  localTimes: (offset: string) => string;
  noProblems: string;
  problemsHeader: (n: number) => string;
  resendHint: string;
  allWell: string;
  notSent: (n: string, ids: string) => string;
  notWorking: (routes: string) => string;
  /** Quarantine budget: refused packages whose files were not kept (n: "3 packages"). */
  quarantineDropped: (n: string) => string;
  /** Quarantine budget reached, nothing dropped yet. */
  quarantineFull: string;
}

const WORDS: Record<Lang, Words> = {
  en: {
    packages: { one: 'package', other: 'packages' },
    files: { one: 'file', other: 'files' },
    notSending: 'NOT SENDING',
    notReceiving: 'NOT RECEIVING',
    since: 'since',
    waiting: (n, oldest) => `${n} waiting${oldest ? `, oldest ${oldest}` : ''}`,
    dead: (n) => `${n} NOT SENT (gave up retrying)`,
    deadHint: 'send them again (resend-failed) or call IT',
    quarantined: (n) => `${n} received but refused (quarantined)`,
    refused: (n) => `${n} refused in the outbox (left there)`,
    stuck: (n, over) => `${n} waiting for more than ${over}`,
    unconfirmed: (n, over) => `${n} sent but not confirmed by the office for more than ${over}`,
    attention: 'needs attention',
    ok: 'ok',
    lastSuccess: 'last success',
    notRunYet: 'not run yet',
    working: (pid, since) => `working now (process ${pid}, since ${since})`,
    hours: { one: 'h', other: 'h' },
    minutes: { one: 'min', other: 'min' },
    days: { one: 'day', other: 'days' },
    localTimes: (offset) => `times below are local, UTC${offset}`,
    noProblems: 'no problems',
    problemsHeader: (n) => `problems (${n}):`,
    resendHint: '(send failed/dead ones again: sprelay resend --failed; mark ones you have dealt with: sprelay ack ID)',
    allWell: 'All sent and received.',
    notSent: (n, ids) => `${n} not sent: call IT and say ${ids}.`,
    notWorking: (routes) => `Exchange does not work (${routes}): call IT.`,
    quarantineDropped: (n) => `Quarantine is full: ${n} refused and NOT KEPT. Call IT.`,
    quarantineFull: 'Quarantine is full: the next refused packages will not be kept. Call IT.',
  },
  ru: {
    packages: { one: 'пакет', few: 'пакета', many: 'пакетов', other: 'пакета', zero: 'пакетов', two: 'пакета' },
    files: { one: 'файл', few: 'файла', many: 'файлов', other: 'файла', zero: 'файлов', two: 'файла' },
    notSending: 'НЕ ОТПРАВЛЯЕТ',
    notReceiving: 'НЕ ПОЛУЧАЕТ',
    since: 'с',
    waiting: (n, oldest) => `ждут отправки: ${n}${oldest ? `, самый старый — ${oldest}` : ''}`,
    dead: (n) => `${n} НЕ ОТПРАВЛЕНО (попытки исчерпаны)`,
    deadHint: 'отправьте заново (resend-failed) или позвоните в ИТ',
    quarantined: (n) => `${n} получено, но отклонено (карантин)`,
    refused: (n) => `${n} не принято из папки выгрузки (остались там)`,
    stuck: (n, over) => `${n} ждут дольше ${over}`,
    unconfirmed: (n, over) => `${n} отправлено, но офис не подтвердил получение дольше ${over}`,
    attention: 'требует внимания',
    ok: 'в порядке',
    lastSuccess: 'последний успех',
    notRunYet: 'ещё не запускался',
    working: (pid, since) => `сейчас работает (процесс ${pid}, с ${since})`,
    hours: { one: 'ч', other: 'ч' },
    minutes: { one: 'мин', other: 'мин' },
    days: { one: 'день', few: 'дня', many: 'дней', other: 'дня', zero: 'дней', two: 'дня' },
    localTimes: (offset) => `время ниже местное, UTC${offset}`,
    noProblems: 'проблем нет',
    problemsHeader: (n) => `проблемы (${n}):`,
    resendHint: '(отправить неотправленные заново: sprelay resend --failed; отметить разобранные: sprelay ack НОМЕР)',
    allWell: 'Всё отправлено и получено.',
    notSent: (n, ids) => `Не отправлено: ${n}. Позвоните в ИТ и назовите номера ${ids}.`,
    notWorking: (routes) => `Обмен не работает (${routes}). Позвоните в ИТ.`,
    quarantineDropped: (n) => `Карантин переполнен: ${n} отклонено и НЕ СОХРАНЕНО. Позвоните в ИТ.`,
    quarantineFull: 'Карантин переполнен: следующие отклонённые пакеты не будут сохранены. Позвоните в ИТ.',
  },
  uk: {
    packages: { one: 'пакет', few: 'пакети', many: 'пакетів', other: 'пакета', zero: 'пакетів', two: 'пакети' },
    files: { one: 'файл', few: 'файли', many: 'файлів', other: 'файла', zero: 'файлів', two: 'файли' },
    notSending: 'НЕ НАДСИЛАЄ',
    notReceiving: 'НЕ ОТРИМУЄ',
    since: 'з',
    waiting: (n, oldest) => `чекають надсилання: ${n}${oldest ? `, найстаріший — ${oldest}` : ''}`,
    dead: (n) => `${n} НЕ НАДІСЛАНО (спроби вичерпано)`,
    deadHint: 'надішліть знову (resend-failed) або зателефонуйте в ІТ',
    quarantined: (n) => `${n} отримано, але відхилено (карантин)`,
    refused: (n) => `${n} не прийнято з папки вивантаження (залишилися там)`,
    stuck: (n, over) => `${n} чекають довше ${over}`,
    unconfirmed: (n, over) => `${n} надіслано, але офіс не підтвердив отримання довше ${over}`,
    attention: 'потребує уваги',
    ok: 'гаразд',
    lastSuccess: 'останній успіх',
    notRunYet: 'ще не запускався',
    working: (pid, since) => `зараз працює (процес ${pid}, з ${since})`,
    hours: { one: 'год', other: 'год' },
    minutes: { one: 'хв', other: 'хв' },
    days: { one: 'день', few: 'дні', many: 'днів', other: 'дня', zero: 'днів', two: 'дні' },
    localTimes: (offset) => `час нижче місцевий, UTC${offset}`,
    noProblems: 'проблем немає',
    problemsHeader: (n) => `проблеми (${n}):`,
    resendHint: '(надіслати ненадіслані знову: sprelay resend --failed; позначити розібрані: sprelay ack НОМЕР)',
    allWell: 'Усе надіслано й отримано.',
    notSent: (n, ids) => `Не надіслано: ${n}. Зателефонуйте в ІТ і назвіть номери ${ids}.`,
    notWorking: (routes) => `Обмін не працює (${routes}). Зателефонуйте в ІТ.`,
    quarantineDropped: (n) => `Карантин переповнений: ${n} відхилено й НЕ ЗБЕРЕЖЕНО. Зателефонуйте в ІТ.`,
    quarantineFull: 'Карантин переповнений: наступні відхилені пакети не буде збережено. Зателефонуйте в ІТ.',
  },
};

export function words(lang: Lang): Words {
  return WORDS[lang];
}

const count = (lang: Lang, n: number, forms: Plural) => `${n} ${plural(lang, n, forms)}`;

/**
 * The quarantine budget's line in `status`, or null: packages refused whose files were dropped
 * (not yet acknowledged), else a full quarantine that will drop the next ones.
 */
export function quarantineLine(lang: Lang, q: { dropped: number; full: boolean }): string | null {
  const w = WORDS[lang];
  if (q.dropped > 0) return w.quarantineDropped(count(lang, q.dropped, w.packages));
  return q.full ? w.quarantineFull : null;
}

/** `6 h`, `25 min`, `3 days`: a duration as a person says it. */
export function duration(lang: Lang, ms: number): string {
  const w = WORDS[lang];
  if (ms < 60_000) return `<${count(lang, 1, w.minutes)}`;
  const min = Math.round(ms / 60_000);
  if (min < 120) return count(lang, min, w.minutes);
  const h = Math.round(min / 60);
  if (h < 48) return count(lang, h, w.hours);
  return count(lang, Math.round(h / 24), w.days);
}

function reasonText(lang: Lang, r: Reason, now: number, direction: 'in' | 'out'): string {
  const w = WORDS[lang];
  const ids = (list: number[], n: number) =>
    list.length ? `: #${list.join(', #')}${n > list.length ? ', …' : ''}` : '';
  switch (r.kind) {
    case 'route-error': {
      const pending =
        r.pending > 0 && direction === 'out'
          ? ` — ${w.waiting(count(lang, r.pending, w.packages), r.oldestPending ? duration(lang, now - r.oldestPending) : '')}`
          : '';
      return `${direction === 'out' ? w.notSending : w.notReceiving} ${w.since} ${shortTime(r.since, now)}${pending} — ${r.error}`;
    }
    case 'dead':
      return `${w.dead(count(lang, r.n, w.packages))}${ids(r.ids, r.n)} — ${w.deadHint}`;
    case 'quarantined':
      return `${w.quarantined(count(lang, r.n, w.packages))}${ids(r.ids, r.n)}`;
    case 'refused':
      return `${w.refused(count(lang, r.n, w.files))}${ids(r.ids, r.n)}`;
    case 'stuck':
      return w.stuck(count(lang, r.n, w.packages), duration(lang, r.alertAfterMs));
    case 'unconfirmed':
      return w.unconfirmed(count(lang, r.n, w.packages), duration(lang, r.confirmWithinMs));
  }
}

/**
 * One line a cashier can read: `export: NOT SENDING since 03:02 — 12 packages waiting, oldest 6 h
 * — office share unreachable`, `import: ok — last success 03:05`.
 */
export function verdictLine(v: RouteVerdict, lang: Lang, now: number): string {
  const w = WORDS[lang];
  let line: string;
  if (v.verdict === 'ok') {
    line = `${v.route}: ${w.ok} — ${v.lastSuccessAt ? `${w.lastSuccess} ${shortTime(v.lastSuccessAt, now)}` : v.lastRunAt ? `${w.lastSuccess} —` : w.notRunYet}`;
  } else {
    const first = v.reasons.find((r) => r.kind === 'route-error');
    const parts = v.reasons.map((r) => reasonText(lang, r, now, v.direction));
    line = first
      ? `${v.route}: ${parts.join('; ')}`
      : `${v.route}: ${v.verdict === 'failing' ? '' : `${w.attention} ${w.since} ${shortTime(v.since ?? now, now)} — `}${parts.join('; ')}`;
  }
  if (v.running) line += ` [${w.working(v.running.pid, shortTime(v.running.since, now))}]`;
  return line;
}

/**
 * The last words of the resend script, for a cashier: "All sent and received." or "3 packages not
 * sent: call IT and say #17, #18, #21." (and which routes do not work at all).
 */
export function plainVerdict(lang: Lang, vs: RouteVerdict[], notSentIds: number[]): string {
  const w = WORDS[lang];
  const lines: string[] = [];
  if (notSentIds.length) {
    const shown = notSentIds.slice(0, 10).map((id) => `#${id}`);
    const more = notSentIds.length > shown.length ? ', …' : '';
    lines.push(w.notSent(count(lang, notSentIds.length, w.packages), shown.join(', ') + more));
  }
  const broken = vs.filter((v) => v.reasons.some((r) => r.kind === 'route-error')).map((v) => v.route);
  if (broken.length) lines.push(w.notWorking(broken.join(', ')));
  if (!lines.length && vs.some((v) => v.verdict !== 'ok')) {
    // quarantined inbound or old waiting work: not the cashier's to resend, still IT's to see
    lines.push(
      w.notWorking(
        vs
          .filter((v) => v.verdict !== 'ok')
          .map((v) => v.route)
          .join(', '),
      ),
    );
  }
  return lines.length ? lines.join('\n') : w.allWell;
}
