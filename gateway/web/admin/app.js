// The merchant admin: one Alpine.js component, a pure client of /api/v1/admin with the staff
// token. Pages are chosen by the URL hash (#/customers, #/orders/<id>, ...), so the back
// button and bookmarks work without any server routes.
"use strict";

const API = "/api/v1";
const REFRESH_KEY = "clientela.admin.refresh";   // sessionStorage: gone with the tab
const LANG_KEY = "clientela.admin.lang";          // localStorage: remembered
const PAGE_SIZE = 25;

// The rules stay with the services: an order's detail carries the states each machine may
// move to (allowed), whether its payment is manual, and which changes email the customer
// (emailed_changes); its history entries carry a code the admin translates (i18n "hc_<code>");
// the email kinds come from /admin/notifications/kinds.

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    this.errors = problem.errors || {};
  }
}

function isoDate(date) { return date.toISOString().slice(0, 10); }
function daysAgo(n) { const d = new Date(); d.setUTCDate(d.getUTCDate() - n); return isoDate(d); }
function nextDay(day) { const d = new Date(day + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() + 1); return isoDate(d); }
function monthsAgo(n) { const d = new Date(); d.setUTCMonth(d.getUTCMonth() - n); return isoDate(d); }
function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch (e) { return {}; }
}
function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url; link.download = filename;
  document.body.appendChild(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
function filenameOf(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}
function emptyAddress() {
  return {first_name: "", last_name: "", line1: "", line2: "", city: "", postal_code: "",
          region: "", country: "ES", phone: ""};
}

document.addEventListener("alpine:init", () => {
  window.Alpine.data("admin", () => ({
    lang: localStorage.getItem(LANG_KEY) || (navigator.language || "en").slice(0, 2),
    token: null, claims: {}, email: "",
    login: {email: "", password: "", busy: false, error: ""},
    route: {page: "customers", id: null, query: {}},
    flash: "", booting: true, refreshing: null, currency: null,

    // customers
    categories: [], categoriesError: "", newCategory: "", editingCategory: null, renameTo: "",
    pricing: null,  // the selected category's pricing tab
    customers: {items: [], total: 0, next_cursor: null, loading: false, error: ""},
    customerFilters: {q: "", type: "", has_account: "", category: "", country: "",
                      accepts_marketing: ""},
    customerSort: "-created_at", customerCursors: [], customerCursor: null,
    newCustomer: null,
    customer: null, customerOrders: [], customerError: "", customerMessage: "",
    customerEdit: {}, assignCategory: "", eraseOpen: false, eraseEmail: "",

    // orders
    orders: {items: [], total: 0, next_before: null, loading: false, error: ""},
    orderFilters: {status: "", payment_status: "", fulfillment_status: "", placed_from: "",
                   placed_to: "", q: "", customer_id: ""},
    orderMarkers: [], orderBefore: null,
    exportForm: {from: monthsAgo(3), to: isoDate(new Date()), status: "", busy: false,
                 error: "", message: ""},
    order: null, orderError: "", orderMessage: "",
    paymentForm: {payment_status: "", comment: "", notify_customer: true, error: ""},
    refundForm: {amount: "", comment: "", notify_customer: true, error: ""},
    fulfillmentForm: {fulfillment_status: "", carrier: "", tracking_number: "",
                      tracking_url: "", notify_customer: true, error: ""},
    cancelForm: {comment: "", payment: "refund", notify_customer: true, error: ""},
    noteForm: {comment: "", error: ""},
    recoveryUrl: "", paymentLink: null, products: [],
    manual: null,

    // insights, settings, notifications
    insights: null, stats: null, insightsError: "", charts: [],
    settings: null, settingsForm: {}, settingsError: "", settingsMessage: "",
    notificationSettings: null, notificationForm: {}, notificationError: "",
    notificationMessage: "",
    deliveries: {items: [], next_before: null, loading: false, error: ""},
    deliveryFilters: {status: "", kind: "", recipient: ""}, deliveryMarkers: [],
    deliveryBefore: null, notificationKinds: [], deliveryKinds: [],

    async init() {
      if (!["en", "es"].includes(this.lang)) this.lang = "en";
      document.documentElement.lang = this.lang;
      window.addEventListener("hashchange", () => this.navigate());
      const refresh = sessionStorage.getItem(REFRESH_KEY);
      if (refresh) {
        try { await this.refreshWith(refresh); } catch (e) { sessionStorage.removeItem(REFRESH_KEY); }
      }
      this.booting = false;
      if (this.token) this.navigate();
    },

    // --- words ---------------------------------------------------------------------------
    t(key, values) {
      const words = window.CLIENTELA_I18N;
      // "{n} results" has a singular ("1 result") where the language's plural rules say so.
      if (values && typeof values.n === "number") {
        const form = `${key}_${new Intl.PluralRules(this.lang).select(values.n)}`;
        if ((words[this.lang] || {})[form] || words.en[form]) key = form;
      }
      let text = (words[this.lang] && words[this.lang][key]) || words.en[key] || key;
      for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, value);
      return text;
    },
    state(value) { return value ? this.t("st_" + value) : "—"; },
    method(value) { return value ? this.t("pm_" + value) : "—"; },
    setLang(lang) {
      this.lang = lang;
      localStorage.setItem(LANG_KEY, lang);
      document.documentElement.lang = lang;
      if (this.route.page === "insights" && this.insights) this.drawCharts();
    },
    money(minor, currency) {
      if (minor === null || minor === undefined) return "—";
      return new Intl.NumberFormat(this.lang, {style: "currency", currency: currency || "EUR"})
        .format(minor / 100);
    },
    spend(totals) {
      const entries = Object.entries(totals || {});
      if (!entries.length) return this.money(0, this.settings ? this.settings.currency : "EUR");
      return entries.map(([currency, minor]) => this.money(minor, currency)).join(" · ");
    },
    when(iso) {
      if (!iso) return "—";
      return new Intl.DateTimeFormat(this.lang, {dateStyle: "medium", timeStyle: "short"})
        .format(new Date(iso));
    },
    day(iso) {
      return iso ? new Intl.DateTimeFormat(this.lang, {dateStyle: "medium"}).format(new Date(iso)) : "—";
    },
    percent(share) { return new Intl.NumberFormat(this.lang, {style: "percent", maximumFractionDigits: 1}).format(share || 0); },
    fullName(person) {
      const name = [person.first_name, person.last_name].filter(Boolean).join(" ");
      return name || person.email || "—";
    },
    actor(who) {
      if (!who) return "—";
      if (who === "customer") return this.t("who_customer");
      if (who === "system") return this.t("who_system");
      if (who.startsWith("staff:")) {
        return who.slice(6) === this.claims.sub ? `${this.t("who_you")} (${this.email})`
          : `${this.t("who_staff")} ${who.slice(6, 14)}`;
      }
      return who;
    },
    get isOwner() { return this.claims.role === "owner"; },
    fieldLabel(field) {
      return this.t({status: "status", payment_status: "payment", fulfillment_status: "fulfillment"}[field] || field);
    },
    // What the service wrote (a code, translated here), or a person's words as typed.
    historyComment(entry) {
      if (entry.code) {
        const params = Object.assign({}, entry.params || {});
        if (params.field) params.field = this.fieldLabel(params.field).toLowerCase();
        if (params.state) params.state = this.state(params.state);
        if (params.status) params.status = this.state(params.status);
        if (params.method) params.method = this.method(params.method);
        if (params.amount !== undefined && params.currency) params.amount = this.money(params.amount, params.currency);
        return this.t("hc_" + entry.code, params);
      }
      return entry.comment ? `“${entry.comment}”` : "";
    },

    // --- the API -------------------------------------------------------------------------
    async api(method, path, body, options = {}) {
      const send = () => fetch(API + path, {
        method,
        headers: Object.assign({"Accept": "application/json"},
          this.token ? {"Authorization": `Bearer ${this.token}`} : {},
          body !== undefined ? {"Content-Type": "application/json"} : {}),
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      let response;
      try {
        response = await send();
        if (response.status === 401 && this.token && !options.noRefresh) {
          const refresh = sessionStorage.getItem(REFRESH_KEY);
          if (refresh) {
            // One refresh for every call that found the token expired: a refresh token is
            // single-use, and presenting a spent one again ends the session (reuse detection).
            this.refreshing = this.refreshing || this.refreshWith(refresh).finally(() => { this.refreshing = null; });
            await this.refreshing;
            response = await send();
          }
        }
      } catch (error) {
        if (error instanceof ApiError) {
          this.signedOut(this.t("error_session"));
          throw error;
        }
        throw new ApiError(0, {detail: this.t("error_network")});
      }
      if (response.status === 401 && !options.noRefresh) this.signedOut(this.t("error_session"));
      if (!response.ok) {
        let problem = {};
        try { problem = await response.json(); } catch (e) { problem = {detail: `HTTP ${response.status}`}; }
        throw new ApiError(response.status, problem);
      }
      if (options.raw) return response;
      if (response.status === 204 || response.status === 202 && !response.headers.get("Content-Type")) return null;
      return response.json();
    },
    problemText(error) {
      const fields = Object.entries(error.errors || {}).map(([field, messages]) =>
        `${field}: ${[].concat(messages).map((m) => typeof m === "string" ? m : JSON.stringify(m)).join(" ")}`);
      return [error.message].concat(fields).join(" — ");
    },
    // A page of a list into its state object: loading shown meanwhile, an error in words.
    async fetchList(list, path) {
      list.loading = true; list.error = "";
      try { Object.assign(list, await this.api("GET", path)); }
      catch (error) { list.error = this.problemText(error); list.items = []; }
      finally { list.loading = false; }
    },
    async download(path, fallbackName) {
      const response = await this.api("GET", path, undefined, {raw: true});
      saveBlob(await response.blob(), filenameOf(response, fallbackName));
    },

    // --- signing in and out ----------------------------------------------------------------
    async signIn() {
      this.login.busy = true; this.login.error = "";
      try {
        const tokens = await this.api("POST", "/admin/auth/login",
          {email: this.login.email, password: this.login.password}, {noRefresh: true});
        this.useTokens(tokens);
        this.email = this.login.email;
        sessionStorage.setItem(REFRESH_KEY + ".email", this.email);
        this.login.password = "";
        if (!location.hash || location.hash === "#/") location.hash = "#/customers";
        this.navigate();
      } catch (error) {
        this.login.error = this.problemText(error);
      } finally {
        this.login.busy = false;
      }
    },
    async refreshWith(refreshToken) {
      const response = await fetch(API + "/admin/auth/refresh", {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({refresh_token: refreshToken})});
      if (!response.ok) throw new ApiError(response.status, {detail: this.t("error_session")});
      this.useTokens(await response.json());
      this.email = sessionStorage.getItem(REFRESH_KEY + ".email") || "";
    },
    useTokens(tokens) {
      this.token = tokens.access_token;
      this.claims = claimsOf(tokens.access_token);
      sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    },
    async signOut() {
      const refresh = sessionStorage.getItem(REFRESH_KEY);
      if (refresh) {
        try { await this.api("POST", "/admin/auth/logout", {refresh_token: refresh}, {noRefresh: true}); }
        catch (e) { /* signed out here whatever the server says */ }
      }
      this.signedOut("");
    },
    signedOut(message) {
      this.token = null; this.claims = {};
      sessionStorage.removeItem(REFRESH_KEY);
      this.login.error = message;
    },

    // --- pages -------------------------------------------------------------------------------
    navigate() {
      const hash = location.hash.replace(/^#\/?/, "");
      const [path, queryString] = hash.split("?");
      const parts = path.split("/").filter(Boolean);
      const query = Object.fromEntries(new URLSearchParams(queryString || ""));
      this.route = {page: parts[0] || "customers", id: parts[1] || null, query};
      this.flash = "";
      if (!this.token) return;
      const page = this.route.page;
      if (page === "customers" && this.route.id) return this.openCustomer(this.route.id);
      if (page === "customers") {
        if (query.q !== undefined) this.customerFilters.q = query.q;
        this.loadCategories();
        return this.loadCustomers(true);
      }
      if (page === "orders" && this.route.id === "new") return this.startManualOrder();
      if (page === "orders" && this.route.id) return this.openOrder(this.route.id);
      if (page === "orders") {
        // A customer's orders: by account (orders keep the account id) or, for a guest, by email.
        this.orderFilters.customer_id = query.customer_id || "";
        if (query.email) this.orderFilters.q = query.email;
        return this.loadOrders(true);
      }
      if (page === "insights") return this.loadInsights();
      if (page === "settings") return this.loadSettings();
      if (page === "notifications") return this.loadDeliveries(true);
    },
    go(hash) { location.hash = hash; },

    // --- categories ----------------------------------------------------------------------
    async loadCategories() {
      this.categoriesError = "";
      try { this.categories = (await this.api("GET", "/admin/categories")).items; }
      catch (error) { this.categoriesError = this.problemText(error); }
    },
    async createCategory() {
      this.categoriesError = "";
      try {
        await this.api("POST", "/admin/categories", {name: this.newCategory.trim()});
        this.newCategory = "";
        await this.loadCategories();
      } catch (error) { this.categoriesError = this.problemText(error); }
    },
    startRename(category) { this.editingCategory = category.id; this.renameTo = category.name; },
    async renameCategory(category) {
      this.categoriesError = "";
      try {
        await this.api("PATCH", `/admin/categories/${category.id}`, {name: this.renameTo.trim()});
        this.editingCategory = null;
        await this.loadCategories();
      } catch (error) { this.categoriesError = this.problemText(error); }
    },
    async deleteCategory(category) {
      if (!confirm(this.t("delete_category_confirm", {name: category.name}))) return;
      this.categoriesError = "";
      try {
        await this.api("DELETE", `/admin/categories/${category.id}`);
        if (this.customerFilters.category === category.id) this.customerFilters.category = "";
        await this.loadCategories();
        await this.loadCustomers(true);
      } catch (error) { this.categoriesError = this.problemText(error); }
    },
    filterByCategory(id) {
      this.customerFilters.category = id; this.loadCustomers(true);
      this.pricing = null;
      if (id) this.openPricing(id);
    },

    // --- a category's prices (orders owns them, keyed by the category) ------------------------
    async openPricing(id) {
      try {
        const [terms, list, products] = await Promise.all([
          this.api("GET", `/admin/categories/${id}/pricing`),
          this.api("GET", `/admin/categories/${id}/prices`),
          this.api("GET", "/admin/products")]);
        this.pricing = {category: id, price_display: terms.price_display,
          discount_percent: terms.discount_percent, products: products.items,
          prices: list.prices.map((p) => ({sku: p.sku, price: (p.price / 100).toFixed(2), list_price: p.list_price})),
          error: "", message: ""};
      } catch (error) { this.categoriesError = this.problemText(error); }
    },
    addPriceRow() { this.pricing.prices.push({sku: "", price: "", list_price: null}); },
    listPriceOf(sku) {
      const product = this.pricing.products.find((p) => p.sku === sku);
      return product ? product.price : null;
    },
    // A CSV of "sku,price" lines (price in units: 7.00 or 7,00; a header line is skipped).
    async uploadPrices(event) {
      const file = event.target.files[0];
      if (!file) return;
      const rows = [];
      for (const raw of (await file.text()).split(/\r?\n/)) {
        const line = raw.trim();
        if (!line) continue;
        const [sku, ...rest] = line.split(/[;,\t]/);
        const price = rest.join(".").replace(/"/g, "").trim();
        if (!/^\d+(\.\d{1,2})?$/.test(price)) continue;  // the header, or a line with no price
        rows.push({sku: sku.replace(/"/g, "").trim(), price, list_price: this.listPriceOf(sku.trim())});
      }
      this.pricing.prices = rows;
      this.pricing.message = this.t("prices_loaded", {n: rows.length});
      event.target.value = "";
    },
    async savePricing() {
      const p = this.pricing;
      p.error = ""; p.message = "";
      const prices = [];
      for (const row of p.prices) {
        if (!row.sku) continue;
        const minor = Math.round(parseFloat(String(row.price).replace(",", ".")) * 100);
        if (!(minor >= 0)) { p.error = this.t("price_invalid", {sku: row.sku}); return; }
        prices.push({sku: row.sku, price: minor});
      }
      try {
        await this.api("PUT", `/admin/categories/${p.category}/pricing`,
          {price_display: p.price_display, discount_percent: parseInt(p.discount_percent, 10) || 0});
        await this.api("PUT", `/admin/categories/${p.category}/prices`, {prices});
        await this.openPricing(p.category);
        this.pricing.message = this.t("saved");
      } catch (error) { p.error = this.problemText(error); }
    },

    // --- the customer list -----------------------------------------------------------------
    async storeCurrency() {
      if (!this.currency) {
        try { this.currency = (await this.api("GET", "/store")).currency; }
        catch (error) { return "EUR"; }
      }
      return this.currency;
    },
    async loadCustomers(fromStart) {
      if (fromStart) { this.customerCursors = []; this.customerCursor = null; }
      const params = new URLSearchParams({limit: PAGE_SIZE, sort: this.customerSort});
      for (const [name, value] of Object.entries(this.customerFilters)) if (value !== "") params.set(name, value);
      // Spend is kept per currency: sort by what the store sells in, not the service's default.
      if (this.customerSort.endsWith("total_spent")) params.set("currency", await this.storeCurrency());
      if (this.customerCursor) params.set("cursor", this.customerCursor);
      return this.fetchList(this.customers, `/admin/customers?${params}`);
    },
    customersNext() {
      this.customerCursors.push(this.customerCursor);
      this.customerCursor = this.customers.next_cursor;
      this.loadCustomers(false);
    },
    customersPrevious() { this.customerCursor = this.customerCursors.pop() || null; this.loadCustomers(false); },
    sortCustomers(key) {
      this.customerSort = this.customerSort === `-${key}` ? key : `-${key}`;
      this.loadCustomers(true);
    },
    sortMark(key) {
      return this.customerSort === `-${key}` ? " ▼" : this.customerSort === key ? " ▲" : "";
    },
    clearCustomerFilters() {
      this.customerFilters = {q: "", type: "", has_account: "", category: "", country: "", accepts_marketing: ""};
      this.loadCustomers(true);
    },
    openNewCustomer() {
      this.newCustomer = {email: "", first_name: "", last_name: "", phone: "", send_invite: false, error: ""};
    },
    async createCustomer() {
      const {error, ...body} = this.newCustomer;
      for (const key of ["first_name", "last_name", "phone"]) if (!body[key]) delete body[key];
      if (body.send_invite) delete body.phone;
      try {
        const created = await this.api("POST", "/admin/customers", body);
        this.newCustomer = null;
        this.flash = this.t(created.invited ? "invited" : "customer_created");
        await this.loadCustomers(true);
      } catch (problem) { this.newCustomer.error = this.problemText(problem); }
    },

    // --- one customer --------------------------------------------------------------------
    async openCustomer(id) {
      this.customer = null; this.customerError = ""; this.customerMessage = "";
      this.eraseOpen = false; this.eraseEmail = ""; this.assignCategory = "";
      try {
        const [page] = await Promise.all([this.api("GET", `/admin/customers/${id}`), this.loadCategories()]);
        this.customer = page.customer;
        this.customerOrders = page.recent_orders || [];
        const c = page.customer;
        this.customerEdit = {first_name: c.first_name || "", last_name: c.last_name || "",
          phone: c.phone || "", note: c.note || "", accepts_marketing: !!c.accepts_marketing, error: ""};
      } catch (error) { this.customerError = this.problemText(error); }
    },
    async saveCustomer() {
      const {error, ...body} = this.customerEdit;
      for (const key of ["first_name", "last_name", "phone", "note"]) if (body[key] === "") body[key] = null;
      this.customerEdit.error = ""; this.customerMessage = "";
      try {
        await this.api("PATCH", `/admin/customers/${this.customer.id}`, body);
        this.customerMessage = this.t("saved");
        await this.openCustomer(this.customer.id);
        this.customerMessage = this.t("saved");
      } catch (problem) { this.customerEdit.error = this.problemText(problem); }
    },
    availableCategories() {
      const held = new Set((this.customer && this.customer.categories || []).map((c) => c.id));
      return this.categories.filter((c) => !held.has(c.id));
    },
    async customerAction(run, message) {
      this.customerError = ""; this.customerMessage = "";
      try {
        const settle = await run();
        await this.openCustomer(this.customer.id);
        if (typeof settle === "function" && this.customer) settle(this.customer);
        this.customerMessage = this.t(message || "done");
      } catch (error) { this.customerError = this.problemText(error); }
    },
    addToCategory() {
      const id = this.assignCategory;
      if (!id) return;
      return this.customerAction(() => this.api("PUT", `/admin/categories/${id}/customers/${this.customer.id}`));
    },
    removeFromCategory(category) {
      return this.customerAction(() => this.api("DELETE", `/admin/categories/${category.id}/customers/${this.customer.id}`));
    },
    accountAction(action) {
      return this.customerAction(async () => {
        const answer = await this.api("POST", `/admin/customers/${this.customer.id}/${action}`, {});
        // The customer record hears of the account through an event, moments later: show
        // the account's new status from identity's own answer meanwhile.
        const account = answer && (answer.account || answer);
        return account && account.status ? (customer) => {
          customer.account_status = account.status;
          customer.account_id = customer.account_id || account.id;
        } : null;
      }, action === "invite" ? "invited" : "done");
    },
    async exportCustomer() {
      this.customerError = "";
      try { await this.download(`/admin/customers/${this.customer.id}/export`, "customer.json"); }
      catch (error) { this.customerError = this.problemText(error); }
    },
    async eraseCustomer() {
      if (this.eraseEmail.trim().toLowerCase() !== (this.customer.email || "").toLowerCase()) return;
      await this.customerAction(() => this.api("POST", `/admin/customers/${this.customer.id}/erase`, {}), "erased");
      this.eraseOpen = false;
    },

    // --- the order list --------------------------------------------------------------------
    async loadOrders(fromStart) {
      if (fromStart) { this.orderMarkers = []; this.orderBefore = null; }
      const params = new URLSearchParams({limit: PAGE_SIZE});
      for (const [name, value] of Object.entries(this.orderFilters)) {
        if (value === "") continue;
        if (name === "placed_to") params.set(name, nextDay(value));  // the whole last day
        else params.set(name, value);
      }
      if (this.orderBefore) params.set("before", this.orderBefore);
      return this.fetchList(this.orders, `/admin/orders?${params}`);
    },
    ordersNext() { this.orderMarkers.push(this.orderBefore); this.orderBefore = this.orders.next_before; this.loadOrders(false); },
    ordersPrevious() { this.orderBefore = this.orderMarkers.pop() || null; this.loadOrders(false); },
    clearOrderFilters() {
      this.orderFilters = {status: "", payment_status: "", fulfillment_status: "", placed_from: "",
                           placed_to: "", q: "", customer_id: ""};
      if (location.hash !== "#/orders") location.hash = "#/orders"; else this.loadOrders(true);
    },
    async exportOrders() {
      const form = this.exportForm;
      form.error = ""; form.message = ""; form.busy = true;
      const params = new URLSearchParams({from: form.from, to: nextDay(form.to), bom: "true"});
      if (form.status) params.set("status", form.status);
      try {
        await this.download(`/admin/orders/export?${params}`, "orders.csv");
        form.message = this.t("downloaded");
      } catch (error) { form.error = this.problemText(error); }
      finally { form.busy = false; }
    },

    // --- one order -----------------------------------------------------------------------
    async openOrder(id) {
      this.order = null; this.orderError = ""; this.orderMessage = ""; this.recoveryUrl = "";
      try { this.showOrder(await this.api("GET", `/admin/orders/${id}`)); }
      catch (error) { this.orderError = this.problemText(error); }
    },
    showOrder(order) {
      this.order = order;
      this.paymentForm = {payment_status: "", comment: "", notify_customer: true, error: ""};
      this.fulfillmentForm = {fulfillment_status: order.fulfillment_status === "unfulfilled" ? "in_transit" : order.fulfillment_status,
        carrier: order.carrier || "", tracking_number: order.tracking_number || "",
        tracking_url: order.tracking_url || "", notify_customer: true, error: ""};
      this.cancelForm = {comment: "", payment: "refund", notify_customer: true, error: ""};
      this.refundForm = {amount: "", comment: "", notify_customer: true, error: ""};
      this.noteForm = {comment: "", error: ""};
    },
    nextStates(field) { return this.order ? (this.order.allowed[field] || []) : []; },
    get manualPayment() { return Boolean(this.order && this.order.manual_payment); },
    get canCancel() { return this.nextStates("status").includes("canceled"); },
    async orderAction(form, path, body) {
      form.error = ""; this.orderMessage = "";
      try {
        await this.api("POST", `/admin/orders/${this.order.id}/${path}`, body);
        await this.openOrder(this.order.id);
        this.orderMessage = this.t("saved");
      } catch (error) { form.error = this.problemText(error); }
    },
    setPayment() {
      const f = this.paymentForm;
      return this.orderAction(f, "payment-status", {payment_status: f.payment_status,
        comment: f.comment || undefined,
        notify_customer: f.notify_customer && this.emailed("payment_status", f.payment_status)});
    },
    emailed(field, state) {
      return Boolean(this.order && (this.order.emailed_changes[field] || []).includes(state));
    },
    setFulfillment() {
      const f = this.fulfillmentForm;
      const body = {fulfillment_status: f.fulfillment_status,
        notify_customer: f.notify_customer && this.emailed("fulfillment_status", f.fulfillment_status)};
      for (const key of ["carrier", "tracking_number", "tracking_url", "comment"]) if (f[key]) body[key] = f[key];
      return this.orderAction(f, "fulfillment", body);
    },
    cancelOrder() {
      const f = this.cancelForm;
      const body = {status: "canceled", comment: f.comment || undefined,
        notify_customer: f.notify_customer};
      if (this.order.payment_status === "paid") body.payment = f.payment;
      return this.orderAction(f, "status", body);
    },
    refundOrder() {
      const f = this.refundForm;
      const body = {notify_customer: f.notify_customer, comment: f.comment || undefined};
      if (String(f.amount).trim()) {
        // Typed in major units ("12,50" or "12.50"); the API takes minor units.
        const amount = Math.round(parseFloat(String(f.amount).replace(",", ".")) * 100);
        if (!(amount > 0)) { f.error = this.t("refund_amount_invalid"); return; }
        body.amount = amount;
      }
      return this.orderAction(f, "refund", body);
    },
    addNote() { return this.orderAction(this.noteForm, "notes", {comment: this.noteForm.comment}); },
    async getRecoveryUrl() {
      this.orderError = "";
      try { this.recoveryUrl = (await this.api("GET", `/admin/orders/${this.order.id}/recovery-url`)).url; }
      catch (error) { this.orderError = this.problemText(error); }
    },
    async copyLink(url) {
      try { await navigator.clipboard.writeText(url); this.orderMessage = this.t("copied"); }
      catch (e) { /* the link is shown in its field to copy by hand anyway */ }
    },
    async orderPdf(kind) {
      this.orderError = "";
      const number = this.order.number.replace("#", "");
      try { await this.download(`/admin/orders/${this.order.id}/${kind}?format=pdf`, `${kind}-${number}.pdf`); }
      catch (error) { this.orderError = this.problemText(error); }
    },

    // --- manual order ----------------------------------------------------------------------
    async startManualOrder() {
      this.manual = {email: "", locale: this.lang, payment_method: "",
        payment_processed: true, note: "", lines: [{sku: "", quantity: 1}],
        shipping_address: emptyAddress(), error: "", busy: false, methods: []};
      try {
        const [products, settings] = await Promise.all([
          this.api("GET", "/admin/products"), this.api("GET", "/admin/settings")]);
        this.products = products.items.filter((p) => p.active);
        // Only the methods the store takes (the API refuses the others).
        this.manual.methods = settings.payment_methods;
        this.manual.payment_method = settings.payment_methods[0];
      }
      catch (error) { this.manual.error = this.problemText(error); }
    },
    manualNeedsShipping() {
      return this.manual.lines.some((line) => {
        const product = this.products.find((p) => p.sku === line.sku);
        return product && !product.digital;
      });
    },
    manualTotal() {
      return this.manual.lines.reduce((sum, line) => {
        const product = this.products.find((p) => p.sku === line.sku);
        return sum + (product ? product.price * (parseInt(line.quantity, 10) || 0) : 0);
      }, 0);
    },
    async placeManualOrder() {
      const m = this.manual;
      m.error = ""; m.busy = true;
      const body = {email: m.email, locale: m.locale, payment_method: m.payment_method,
        payment_processed: m.payment_processed,
        lines: m.lines.filter((l) => l.sku).map((l) => ({sku: l.sku, quantity: parseInt(l.quantity, 10) || 0}))};
      if (m.note) body.note = m.note;
      if (this.manualNeedsShipping()) {
        body.shipping_address = Object.fromEntries(Object.entries(m.shipping_address).filter(([, v]) => v !== ""));
      }
      try {
        const created = await this.api("POST", "/admin/orders", body);
        const order = created.order || created;
        this.manual = null;
        // The link is only in this answer (and the customer's email): shown on the order page
        // so the merchant can also send it by other means.
        this.paymentLink = created.payment_url ? {order: order.id, url: created.payment_url} : null;
        location.hash = `#/orders/${order.id}`;
      } catch (error) { m.error = this.problemText(error); }
      finally { if (this.manual) m.busy = false; }
    },

    // --- insights --------------------------------------------------------------------------
    async loadInsights() {
      this.insightsError = "";
      try {
        const [insights, stats] = await Promise.all([
          this.api("GET", "/admin/customers/insights"),
          this.api("GET", `/admin/orders/stats?from=${daysAgo(89)}&to=${isoDate(new Date())}`)]);
        this.insights = insights; this.stats = stats;
        this.$nextTick(() => this.drawCharts());
      } catch (error) { this.insightsError = this.problemText(error); }
    },
    drawCharts() {
      for (const chart of this.charts) chart.destroy();
      this.charts = [];
      if (!window.Chart || !this.stats) return;
      const labels = this.stats.days.map((d) => new Intl.DateTimeFormat(this.lang, {month: "short", day: "numeric"}).format(new Date(d.date + "T00:00:00Z")));
      const make = (id, config) => {
        const canvas = document.getElementById(id);
        if (canvas) this.charts.push(new window.Chart(canvas, config));
      };
      const options = {responsive: true, maintainAspectRatio: false, animation: false,
        plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true, ticks: {precision: 0}}}};
      make("chart-orders", {type: "line", data: {labels, datasets: [
        {label: this.t("orders"), data: this.stats.days.map((d) => d.orders), borderColor: "#2463eb", tension: 0.2},
        {label: this.t("paid_orders"), data: this.stats.days.map((d) => d.paid_orders), borderColor: "#16a34a", tension: 0.2}]},
        options: Object.assign({}, options, {plugins: {legend: {display: true}}})});
      make("chart-revenue", {type: "bar", data: {labels, datasets: [
        {label: this.t("revenue"), data: this.stats.days.map((d) => d.revenue / 100), backgroundColor: "#16a34a"}]},
        options});
      make("chart-share", {type: "doughnut", data: {
        labels: [this.t("guest"), this.t("registered")],
        datasets: [{data: [this.insights.guest_share, this.insights.registered_share],
                    backgroundColor: ["#f59e0b", "#2463eb"]}]},
        options: {responsive: true, maintainAspectRatio: false, animation: false}});
    },

    // --- settings ------------------------------------------------------------------------
    async loadSettings() {
      this.settingsError = ""; this.settingsMessage = ""; this.notificationError = ""; this.notificationMessage = "";
      try {
        const [settings, notifications] = await Promise.all([
          this.api("GET", "/admin/settings"), this.api("GET", "/admin/notifications/settings")]);
        this.settings = settings; this.settingsForm = this.formOfSettings(settings);
        this.notificationSettings = notifications; this.notificationForm = Object.assign({}, notifications);
        this.notificationKinds = Object.keys(notifications);  // the ones a store may switch off
      } catch (error) { this.settingsError = this.problemText(error); }
    },
    // The sender's address is edited as lines of text.
    formOfSettings(settings) {
      return Object.assign({}, settings, {store_address: (settings.store_address || []).join("\n"),
        reply_to: settings.reply_to || "", bank_transfer_instructions: settings.bank_transfer_instructions || "",
        payment_methods: (settings.payment_methods || []).slice()});
    },
    async saveSettings() {
      this.settingsError = ""; this.settingsMessage = "";
      const body = {};
      const current = this.formOfSettings(this.settings);
      for (const [key, value] of Object.entries(this.settingsForm)) {
        if (JSON.stringify(value) === JSON.stringify(current[key])) continue;
        if (key === "store_address") body[key] = value.split("\n").map((line) => line.trim()).filter(Boolean);
        else if (key === "reply_to" || key === "bank_transfer_instructions") body[key] = value.trim() || null;
        else if (key === "payment_methods") body[key] = this.settings.payment_method_choices.map((c) => c.method).filter((m) => value.includes(m));
        else body[key] = ["password_min_length", "password_min_classes"].includes(key) ? parseInt(value, 10) : value;
      }
      try {
        this.settings = await this.api("PUT", "/admin/settings", body);
        this.currency = this.settings.currency;
        this.settingsForm = this.formOfSettings(this.settings);
        this.settingsMessage = this.t("saved");
      } catch (error) { this.settingsError = this.problemText(error); }
    },
    async saveNotificationSettings() {
      this.notificationError = ""; this.notificationMessage = "";
      try {
        this.notificationSettings = await this.api("PUT", "/admin/notifications/settings", this.notificationForm);
        this.notificationForm = Object.assign({}, this.notificationSettings);
        this.notificationMessage = this.t("saved");
      } catch (error) { this.notificationError = this.problemText(error); }
    },

    // --- the delivery log ------------------------------------------------------------------
    async loadDeliveries(fromStart) {
      if (fromStart) { this.deliveryMarkers = []; this.deliveryBefore = null; }
      const params = new URLSearchParams({limit: PAGE_SIZE});
      for (const [name, value] of Object.entries(this.deliveryFilters)) if (value) params.set(name, value);
      if (this.deliveryBefore) params.set("before", this.deliveryBefore);
      if (!this.deliveryKinds.length) {
        try {
          this.deliveryKinds = (await this.api("GET", "/admin/notifications/kinds")).map((k) => k.kind);
        } catch (error) { this.deliveries.error = this.problemText(error); }
      }
      return this.fetchList(this.deliveries, `/admin/notifications?${params}`);
    },
    deliveriesNext() { this.deliveryMarkers.push(this.deliveryBefore); this.deliveryBefore = this.deliveries.next_before; this.loadDeliveries(false); },
    deliveriesPrevious() { this.deliveryBefore = this.deliveryMarkers.pop() || null; this.loadDeliveries(false); },
    async resend(delivery) {
      this.deliveries.error = ""; this.flash = "";
      try {
        await this.api("POST", `/admin/notifications/${delivery.id}/resend`, {});
        this.flash = this.t("resent");
        await this.loadDeliveries(true);
      } catch (error) { this.deliveries.error = this.problemText(error); }
    },
  }));
});
