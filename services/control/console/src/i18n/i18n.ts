import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { en } from './en.js';
import { zhCN } from './zh-CN.js';

export type Lang = 'zh-CN' | 'en';
export type MessageKey = keyof typeof en;

const MESSAGES: Record<Lang, Record<MessageKey, string>> = { 'zh-CN': zhCN, en };
/** The only thing the console keeps in the browser: the language chosen (nothing personal). */
const LANG_KEY = 'cityshare.lang';

export function initialLang(): Lang {
  return localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'zh-CN';
}

export function rememberLang(lang: Lang): void {
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;
}

/** Messages and dates in one language; dates in the browser's own time zone. */
export function translator(lang: Lang) {
  const dateTime = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'medium' });
  return {
    lang,
    t: (key: MessageKey, vars: Record<string, string | number> = {}) => MESSAGES[lang][key].replace(/\{(\w+)\}/g, (_, name: string) => String(vars[name] ?? `{${name}}`)),
    date: (iso: string | null | undefined) => (iso ? dateTime.format(new Date(iso)) : ''),
    zone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  };
}

export type Translator = ReturnType<typeof translator>;
export const I18n = createContext<Translator>(translator('zh-CN'));
export const useI18n = () => useContext(I18n);
