// The fleet page's words in English, Russian and Ukrainian, for a person at head office (an
// accountant checking that every station's reports arrive), not for an engineer. Kept apart from
// agent/texts.ts, which speaks to station staff.
import type { FleetReason, FleetVerdict } from './model.js';

export type FleetLang = 'en' | 'ru' | 'uk';

export interface FleetWords {
  title: string;
  generated: string;
  times: string;
  columns: {
    station: string;
    verdict: string;
    reason: string;
    lastHeartbeat: string;
    lastPackage: string;
    unconfirmed: string;
    failing: string;
    lastError: string;
    perDay: string;
  };
  verdict: (v: FleetVerdict, hours: number | null) => string;
  summary: (n: number, by: Record<FleetVerdict, number>) => string;
  reason: (r: FleetReason) => string;
  allOk: string;
  never: string;
  none: string;
  chart: (total: number, max: number) => string;
  legend: string;
  /** `sprelay fleet` on an office that has heard from no station yet. */
  noStations: string;
  /** `sprelay fleet --html FILE`: where the page went. */
  wrote: (file: string) => string;
}

const en: FleetWords = {
  title: 'Stations',
  generated: 'Generated',
  times: 'times',
  columns: {
    station: 'Station',
    verdict: 'Status',
    reason: 'Why',
    lastHeartbeat: 'Last status report',
    lastPackage: 'Last package received',
    unconfirmed: 'Not confirmed',
    failing: 'Not sent yet',
    lastError: 'Last error',
    perDay: 'Packages per day, last 30 days',
  },
  verdict: (v, h) =>
    ({ ok: 'OK', attention: 'Needs attention', failing: 'Failing', silent: h === null ? 'Silent' : `Silent ${h} h` })[
      v
    ],
  summary: (n, by) =>
    `${n} stations: ${by.failing} failing, ${by.silent} silent, ${by.attention} need attention, ${by.ok} OK`,
  reason: (r) => {
    switch (r.kind) {
      case 'route-failing':
        return `route ${r.route} is not working`;
      case 'dead':
        return `${r.n} package(s) could not be sent and wait for a person at the station`;
      case 'never-heard':
        return 'nothing has ever arrived from this station';
      case 'silent':
        return `nothing has arrived for ${r.hours} h`;
      case 'unconfirmed':
        return `${r.n} package(s) sent but not confirmed in time`;
      case 'route-attention':
        return `route ${r.route} needs attention`;
      case 'old-version':
        return `station program ${r.version} is older than the office's ${r.office}`;
      case 'no-heartbeat':
        return r.hours === null ? 'no status report has arrived yet' : `no status report for ${r.hours} h`;
    }
  },
  allOk: 'everything arrives',
  never: 'never',
  none: '—',
  chart: (total, max) => `${total} packages in 30 days, at most ${max} a day`,
  legend: 'Worst first. Colours: red failing, grey silent, amber needs attention, green OK.',
  noStations: 'No station has been heard from yet.',
  wrote: (file) => `Page written: ${file}`,
};

const ru: FleetWords = {
  title: 'Станции',
  generated: 'Сформировано',
  times: 'время',
  columns: {
    station: 'Станция',
    verdict: 'Состояние',
    reason: 'Почему',
    lastHeartbeat: 'Последняя сводка',
    lastPackage: 'Последний полученный пакет',
    unconfirmed: 'Не подтверждено',
    failing: 'Не отправлено',
    lastError: 'Последняя ошибка',
    perDay: 'Пакетов в день, 30 дней',
  },
  verdict: (v, h) =>
    ({
      ok: 'В порядке',
      attention: 'Требует внимания',
      failing: 'Сбой',
      silent: h === null ? 'Нет связи' : `Нет связи ${h} ч`,
    })[v],
  summary: (n, by) =>
    `Станций: ${n}. Сбой: ${by.failing}, нет связи: ${by.silent}, требуют внимания: ${by.attention}, в порядке: ${by.ok}`,
  reason: (r) => {
    switch (r.kind) {
      case 'route-failing':
        return `маршрут ${r.route} не работает`;
      case 'dead':
        return `пакетов не удалось отправить: ${r.n}, ждут человека на станции`;
      case 'never-heard':
        return 'от станции ещё ничего не приходило';
      case 'silent':
        return `ничего не приходит уже ${r.hours} ч`;
      case 'unconfirmed':
        return `отправлено, но вовремя не подтверждено пакетов: ${r.n}`;
      case 'route-attention':
        return `маршрут ${r.route} требует внимания`;
      case 'old-version':
        return `программа на станции ${r.version} старее, чем в офисе (${r.office})`;
      case 'no-heartbeat':
        return r.hours === null ? 'сводка о состоянии ещё не приходила' : `нет сводки о состоянии ${r.hours} ч`;
    }
  },
  allOk: 'всё приходит',
  never: 'никогда',
  none: '—',
  chart: (total, max) => `за 30 дней пакетов: ${total}, не больше ${max} в день`,
  legend: 'Сначала худшие. Цвета: красный — сбой, серый — нет связи, жёлтый — требует внимания, зелёный — в порядке.',
  noStations: 'Ни от одной станции ещё ничего не приходило.',
  wrote: (file) => `Страница записана: ${file}`,
};

const uk: FleetWords = {
  title: 'Станції',
  generated: 'Сформовано',
  times: 'час',
  columns: {
    station: 'Станція',
    verdict: 'Стан',
    reason: 'Чому',
    lastHeartbeat: 'Останнє зведення',
    lastPackage: 'Останній отриманий пакет',
    unconfirmed: 'Не підтверджено',
    failing: 'Не надіслано',
    lastError: 'Остання помилка',
    perDay: 'Пакетів на день, 30 днів',
  },
  verdict: (v, h) =>
    ({
      ok: 'Гаразд',
      attention: 'Потребує уваги',
      failing: 'Збій',
      silent: h === null ? 'Немає зв’язку' : `Немає зв’язку ${h} год`,
    })[v],
  summary: (n, by) =>
    `Станцій: ${n}. Збій: ${by.failing}, немає зв’язку: ${by.silent}, потребують уваги: ${by.attention}, гаразд: ${by.ok}`,
  reason: (r) => {
    switch (r.kind) {
      case 'route-failing':
        return `маршрут ${r.route} не працює`;
      case 'dead':
        return `пакетів не вдалося надіслати: ${r.n}, чекають людину на станції`;
      case 'never-heard':
        return 'від станції ще нічого не надходило';
      case 'silent':
        return `нічого не надходить уже ${r.hours} год`;
      case 'unconfirmed':
        return `надіслано, але вчасно не підтверджено пакетів: ${r.n}`;
      case 'route-attention':
        return `маршрут ${r.route} потребує уваги`;
      case 'old-version':
        return `програма на станції ${r.version} старіша, ніж в офісі (${r.office})`;
      case 'no-heartbeat':
        return r.hours === null ? 'зведення про стан ще не надходило' : `немає зведення про стан ${r.hours} год`;
    }
  },
  allOk: 'усе надходить',
  never: 'ніколи',
  none: '—',
  chart: (total, max) => `за 30 днів пакетів: ${total}, не більше ${max} на день`,
  legend:
    'Спершу найгірші. Кольори: червоний — збій, сірий — немає зв’язку, жовтий — потребує уваги, зелений — гаразд.',
  noStations: 'Від жодної станції ще нічого не надходило.',
  wrote: (file) => `Сторінку записано: ${file}`,
};

export const FLEET_WORDS: Record<FleetLang, FleetWords> = { en, ru, uk };
