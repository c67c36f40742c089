// An example storefront on the Clientela API: read it to learn the API. Every call is a plain
// fetch() to /api/v1; Alpine.js only binds the page. The page is chosen by the path under
// /example-store/, so the links in Clientela's emails (/reset-password?token=..., /b/{code},
// /recover/{token}, /orders/{id}?token=...) open the right page when STOREFRONT_URL points here.
"use strict";

const API = "/api/v1";
const BASE = "/example-store";
const CART_KEY = "clientela.example.cart";          // {sku: quantity}, for guests and customers
const EXTRAS_KEY = "clientela.example.checkout";    // buy_link / recovery_token to send along
const REFRESH_KEY = "clientela.example.refresh";
const ACCESS_KEY = "clientela.example.access";

function readJson(storage, key, fallback) {
  try { return JSON.parse(storage.getItem(key)) || fallback; } catch (e) { return fallback; }
}
function newKey() {
  return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
}
function emptyAddress() {
  return {first_name: "", last_name: "", line1: "", line2: "", city: "", postal_code: "",
          region: "", country: "ES", phone: ""};
}

const WORDS = {
  en: {catalogue: "Products", cart: "Cart", login: "Log in", register: "Create an account",
    logout: "Log out", account: "My account", add_to_cart: "Add to cart", out_of_stock: "Sold out",
    empty_cart: "Your cart is empty.", checkout: "Checkout", email: "Email", password: "Password",
    first_name: "First name", last_name: "Last name", address: "Address", city: "City",
    postal_code: "Postal code", country: "Country", phone: "Phone", payment_method: "Payment",
    place_order: "Place order", placing: "Placing your order…", subtotal: "Subtotal",
    remove: "Remove", quantity: "Quantity", thanks: "Thank you! Your order {number} is placed.",
    order_status: "Status", login_to_checkout: "This store sells to registered customers: log in or create an account to check out.",
    account_offer: "Save your details for next time: we have emailed you a link to create an account from this order in one step.",
    forgot: "Forgot your password?", send_link: "Send me a link", link_sent: "If an account uses this email, a link is on its way.",
    new_password: "New password", set_password: "Set password", password_set: "Your password is set. You can log in now.",
    registered: "Check your inbox: we sent you a link to confirm your email.",
    confirm_email: "Confirm my email",
    confirm_email_why: "To confirm this address, enter the password for your account (the one you chose, or a new one). Every other session is signed out.",
    your_orders: "Your orders",
    no_orders: "No orders yet.", addresses: "Addresses", add_address: "Add address",
    no_addresses: "No addresses saved.", delete: "Delete", save_address: "Save this address",
    loading: "Loading…", order: "Order", total: "Total", placed: "Placed", fulfilment: "Shipping",
    payment: "Payment", tracking: "Tracking", back_to_shop: "Back to the shop",
    activated: "Your account is ready.", create_account: "Create my account",
    accounts_off: "This store does not offer customer accounts.", hello: "Hello, {name}",
    bank_transfer: "Bank transfer", cash: "Cash on delivery", cheque: "Cheque", card: "Card",
    recovering: "Your earlier order {number} is back in your cart, at today's prices.",
    new_address: "New address", profile: "Your details", save: "Save", saved: "Saved.",
    change_password: "Change password",
    current_password: "Current password", password_changed: "Password changed.",
    st_pending_payment: "awaiting payment", st_paid: "paid", st_completed: "completed",
    st_canceled: "canceled", st_abandoned: "not completed", st_pending: "pending",
    st_refunded: "refunded", st_voided: "voided", st_unfulfilled: "being prepared",
    st_requested: "being prepared", st_in_transit: "on its way", st_delivered: "delivered",
    st_partially_refunded: "partly refunded", billing_differs: "Billing address differs (invoice)",
    billing_address: "Billing", company: "Company", tax_id: "Tax ID", how_to_pay: "How to pay",
    reference: "Reference", pay_now: "Pay now", payment_done: "Thank you: your payment is being confirmed. The details are in your email.",
    payment_not_done: "The payment was not completed. You can try again from the link in your email.",
    refunded_amount: "Refunded", login_to_see_prices: "Log in to see prices.",
    contact_to_order: "Prices on request: contact us to order."},
  es: {catalogue: "Productos", cart: "Carrito", login: "Entrar", register: "Crear una cuenta",
    logout: "Salir", account: "Mi cuenta", add_to_cart: "Añadir al carrito", out_of_stock: "Agotado",
    empty_cart: "Tu carrito está vacío.", checkout: "Finalizar compra", email: "Correo electrónico",
    password: "Contraseña", first_name: "Nombre", last_name: "Apellidos", address: "Dirección",
    city: "Ciudad", postal_code: "Código postal", country: "País", phone: "Teléfono",
    payment_method: "Pago", place_order: "Realizar pedido", placing: "Realizando tu pedido…",
    subtotal: "Subtotal", remove: "Quitar", quantity: "Cantidad",
    thanks: "¡Gracias! Tu pedido {number} está hecho.", order_status: "Estado",
    login_to_checkout: "Esta tienda vende a clientes registrados: entra o crea una cuenta para comprar.",
    account_offer: "Guarda tus datos para la próxima vez: te hemos enviado un enlace para crear una cuenta con este pedido en un paso.",
    forgot: "¿Olvidaste tu contraseña?", send_link: "Envíame un enlace",
    link_sent: "Si hay una cuenta con este correo, el enlace va de camino.",
    new_password: "Nueva contraseña", set_password: "Guardar contraseña",
    password_set: "Contraseña guardada. Ya puedes entrar.",
    registered: "Revisa tu correo: te hemos enviado un enlace para confirmar tu dirección.",
    confirm_email: "Confirmar mi correo",
    confirm_email_why: "Para confirmar esta dirección, escribe la contraseña de tu cuenta (la que elegiste u otra nueva). Se cerrarán las demás sesiones.",
    your_orders: "Tus pedidos",
    no_orders: "Aún no hay pedidos.", addresses: "Direcciones", add_address: "Añadir dirección",
    no_addresses: "Sin direcciones guardadas.", delete: "Eliminar",
    save_address: "Guardar esta dirección", loading: "Cargando…", order: "Pedido",
    total: "Total", placed: "Fecha", fulfilment: "Envío", payment: "Pago",
    tracking: "Seguimiento", back_to_shop: "Volver a la tienda", activated: "Tu cuenta está lista.",
    create_account: "Crear mi cuenta", accounts_off: "Esta tienda no ofrece cuentas de cliente.",
    hello: "Hola, {name}", bank_transfer: "Transferencia bancaria", cash: "Contra reembolso",
    cheque: "Cheque", card: "Tarjeta",
    recovering: "Tu pedido anterior {number} está de nuevo en el carrito, a precios de hoy.",
    new_address: "Nueva dirección", profile: "Tus datos", save: "Guardar", saved: "Guardado.",
    change_password: "Cambiar la contraseña",
    current_password: "Contraseña actual", password_changed: "Contraseña cambiada.",
    st_pending_payment: "pendiente de pago", st_paid: "pagado", st_completed: "completado",
    st_canceled: "cancelado", st_abandoned: "no completado", st_pending: "pendiente",
    st_refunded: "reembolsado", st_voided: "anulado", st_unfulfilled: "en preparación",
    st_requested: "en preparación", st_in_transit: "en camino", st_delivered: "entregado",
    st_partially_refunded: "reembolsado en parte", billing_differs: "Datos de facturación distintos (factura)",
    billing_address: "Facturación", company: "Empresa", tax_id: "NIF/CIF", how_to_pay: "Cómo pagar",
    reference: "Concepto", pay_now: "Pagar ahora", payment_done: "Gracias: estamos confirmando tu pago. Tienes los detalles en tu correo.",
    payment_not_done: "El pago no se completó. Puedes volver a intentarlo desde el enlace de tu correo.",
    refunded_amount: "Reembolsado", login_to_see_prices: "Entra para ver los precios.",
    contact_to_order: "Precios bajo consulta: contacta con nosotros para pedir."},
};

document.addEventListener("alpine:init", () => {
  window.Alpine.data("store", () => ({
    store: null, products: [], error: "", message: "", busy: false,
    page: "home", param: "", query: {},
    cart: readJson(localStorage, CART_KEY, {}),
    me: null, access: sessionStorage.getItem(ACCESS_KEY),
    form: {email: "", password: "", first_name: "", last_name: ""},
    checkoutForm: {email: "", payment_method: "", shipping_address: emptyAddress(),
                   save_address: false, billing_differs: false,
                   billing_address: Object.assign(emptyAddress(), {company: "", tax_id: ""})},
    placed: null, orders: [], addresses: [], newAddress: null, order: null,
    profileForm: null, passwordForm: {current_password: "", new_password: ""},
    idempotencyKey: newKey(), refreshing: null,

    async init() {
      const path = location.pathname.replace(BASE, "").replace(/^\/+|\/+$/g, "");
      const [page, ...rest] = path.split("/");
      this.page = page || "home";
      this.param = rest.join("/");
      this.query = Object.fromEntries(new URLSearchParams(location.search));
      try {
        // The login policy decides what the page offers: GET /store is public and cheap.
        this.store = await this.call("GET", "/store");
        document.documentElement.lang = this.store.locale;
        // The store's enabled methods, its first one chosen (GET /store lists them in order).
        this.checkoutForm.payment_method = (this.store.payment_methods[0] || {}).method || "";
        if (this.accountsOffered && (this.access || localStorage.getItem(REFRESH_KEY))) await this.loadMe();
        // After logging in: the catalogue is at this customer's prices (their categories).
        this.products = (await this.call("GET", "/products")).items;
        await this.open();
      } catch (error) { this.error = error.message; }
    },

    // --- what the policy allows ----------------------------------------------------------
    get accountsOffered() { return this.store && this.store.customer_accounts !== "disabled"; },
    get loginRequired() { return this.store && this.store.customer_accounts === "required"; },
    get canCheckout() { return !this.loginRequired || !!this.me; },
    get locale() { return (this.store && this.store.locale) || "es"; },  // the store's, not the browser's
    t(key, values) {
      const words = WORDS[this.locale] || WORDS.en;
      let text = words[key] || WORDS.en[key] || key;
      for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, value);
      return text;
    },
    state(value) { return value ? this.t("st_" + value) : ""; },
    day(iso) { return new Intl.DateTimeFormat(this.locale, {dateStyle: "medium"}).format(new Date(iso)); },
    money(minor, currency) {
      return new Intl.NumberFormat(this.locale,
        {style: "currency", currency: currency || (this.store && this.store.currency) || "EUR"}).format(minor / 100);
    },
    url(path) { return `${BASE}/${path}`; },

    // --- the API -------------------------------------------------------------------------
    async call(method, path, body, headers) {
      const send = () => fetch(API + path, {method, headers: Object.assign(
        {"Accept": "application/json"},
        body !== undefined ? {"Content-Type": "application/json"} : {},
        this.access ? {"Authorization": `Bearer ${this.access}`} : {}, headers || {}),
        body: body !== undefined ? JSON.stringify(body) : undefined});
      let response = await send();
      if (response.status === 401 && this.access) {
        // One refresh at a time: refresh tokens are single-use (a spent one ends the session).
        this.refreshing = this.refreshing || this.refresh().finally(() => { this.refreshing = null; });
        if (await this.refreshing) response = await send();
      }
      if (!response.ok) {
        let problem = {};
        try { problem = await response.json(); } catch (e) { /* not JSON */ }
        const fields = Object.entries(problem.errors || {}).map(([f, m]) => `${f}: ${[].concat(m).join(" ")}`);
        throw new Error([problem.detail || `HTTP ${response.status}`].concat(fields).join(" — "));
      }
      return response.status === 204 ? null : response.json();
    },
    async refresh() {
      const token = localStorage.getItem(REFRESH_KEY);
      this.access = null; sessionStorage.removeItem(ACCESS_KEY);
      if (!token) return false;
      const response = await fetch(API + "/auth/refresh", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({refresh_token: token})});
      if (!response.ok) { localStorage.removeItem(REFRESH_KEY); return false; }
      this.keepTokens(await response.json());
      return true;
    },
    keepTokens(tokens) {
      this.access = tokens.access_token;
      sessionStorage.setItem(ACCESS_KEY, tokens.access_token);
      localStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    },
    async loadMe() {
      if (!this.access && !(await this.refresh())) return;
      try { this.me = await this.call("GET", "/me"); } catch (e) { this.me = null; }
    },
    async logout() {
      const token = localStorage.getItem(REFRESH_KEY);
      if (token) { try { await this.call("POST", "/auth/logout", {refresh_token: token}); } catch (e) { /* gone anyway */ } }
      localStorage.removeItem(REFRESH_KEY); sessionStorage.removeItem(ACCESS_KEY);
      location.href = this.url("");
    },

    // --- pages -----------------------------------------------------------------------------
    async open() {
      if (this.page === "cart" && this.me) await this.prefill();
      if (this.page === "account") {
        if (!this.me) { location.href = this.url("login"); return; }
        this.orders = (await this.call("GET", "/me/orders?limit=20")).items;
        this.addresses = (await this.call("GET", "/me/addresses")).items;
        const profile = this.me.profile || this.me;
        this.profileForm = {first_name: profile.first_name || "", last_name: profile.last_name || "",
                            phone: profile.phone || ""};
      }
      if (this.page === "orders" && this.param) {
        // A guest opens an order with the token from the email; a customer opens their own.
        // Back from the payment page there is no token (the provider never sees it).
        const id = encodeURIComponent(this.param);
        if (!this.query.token && !this.me && this.query.payment) return;
        this.order = this.query.token || !this.me
          ? await this.call("GET", `/orders/${id}?token=${encodeURIComponent(this.query.token || "")}`)
          : await this.call("GET", `/me/orders/${id}`);
        // The payment link of an email (…&pay=1) goes straight on to the payment page.
        if (this.query.pay === "1" && this.canPay) await this.payNow();
      }
      if (this.page === "b" && this.param) {
        const link = await this.call("GET", `/b/${encodeURIComponent(this.param)}`);
        this.fillCart(link.lines, {buy_link: link.code});
      }
      if (this.page === "recover" && this.param) {
        const cart = await this.call("GET", `/recover/${encodeURIComponent(this.param)}`);
        this.fillCart(cart.lines, {recovery_token: cart.recovery_token, number: cart.number});
      }
    },
    fillCart(lines, extras) {
      this.cart = Object.fromEntries(lines.map((line) => [line.sku, line.quantity]));
      this.saveCart();
      sessionStorage.setItem(EXTRAS_KEY, JSON.stringify(extras));
      location.replace(this.url("cart"));
    },
    async prefill() {
      try {
        const prefill = await this.call("GET", "/me/checkout-prefill");
        this.checkoutForm.email = prefill.email;
        if (prefill.shipping_address) {
          const {id, default_shipping, default_billing, ...address} = prefill.shipping_address;
          this.checkoutForm.shipping_address = Object.assign(emptyAddress(),
            Object.fromEntries(Object.entries(address).map(([k, v]) => [k, v || ""])));
        }
        const billing = prefill.billing_address;
        if (billing && (!prefill.shipping_address || billing.id !== prefill.shipping_address.id || billing.tax_id)) {
          // The default billing address (with company and tax id) from the address book.
          const {id, default_shipping, default_billing, ...address} = billing;
          this.checkoutForm.billing_differs = true;
          this.checkoutForm.billing_address = Object.assign(emptyAddress(), {company: "", tax_id: ""},
            Object.fromEntries(Object.entries(address).map(([k, v]) => [k, v || ""])));
        }
        if (!prefill.shipping_address) {
          this.checkoutForm.shipping_address.first_name = prefill.first_name || "";
          this.checkoutForm.shipping_address.last_name = prefill.last_name || "";
        }
      } catch (error) { /* an empty form is fine */ }
    },

    // --- cart ------------------------------------------------------------------------------
    product(sku) { return this.products.find((p) => p.sku === sku); },
    get cartLines() {
      return Object.entries(this.cart).map(([sku, quantity]) => ({sku, quantity, product: this.product(sku)}))
        .filter((line) => line.product);
    },
    get cartCount() { return Object.values(this.cart).reduce((a, b) => a + b, 0); },
    get subtotal() { return this.cartLines.reduce((sum, l) => sum + (l.product.price || 0) * l.quantity, 0); },
    get needsShipping() { return this.cartLines.some((l) => !l.product.digital); },
    get recovering() { return readJson(sessionStorage, EXTRAS_KEY, {}).number; },
    add(sku) { this.cart[sku] = (this.cart[sku] || 0) + 1; this.saveCart(); this.message = ""; },
    setQuantity(sku, value) {
      const quantity = Math.max(0, Math.min(999, parseInt(value, 10) || 0));
      if (quantity) this.cart[sku] = quantity; else delete this.cart[sku];
      this.saveCart();
    },
    saveCart() { localStorage.setItem(CART_KEY, JSON.stringify(this.cart)); },

    get chosenMethod() {
      return this.store && this.store.payment_methods.find((m) => m.method === this.checkoutForm.payment_method);
    },
    get canPay() {
      // Card payments go through the provider's page: POST /orders/{id}/payment says where.
      return !!this.order && this.order.status === "pending_payment" && this.order.payment_status === "pending"
        && this.store.payment_methods.some((m) => m.method === "card");
    },
    async payNow() {
      this.error = ""; this.busy = true;
      try {
        const body = this.query.token ? {token: this.query.token} : {};
        const payment = await this.call("POST", `/orders/${encodeURIComponent(this.order.id)}/payment`, body);
        location.href = payment.redirect_url;
      } catch (error) { this.error = error.message; this.busy = false; }
    },

    async placeOrder() {
      this.error = ""; this.busy = true;
      const extras = readJson(sessionStorage, EXTRAS_KEY, {});
      const body = {email: this.checkoutForm.email, payment_method: this.checkoutForm.payment_method,
        lines: this.cartLines.map((l) => ({sku: l.sku, quantity: l.quantity})),
        locale: this.locale};  // emails in the language the shopper read the store in
      if (this.needsShipping) {
        body.shipping_address = Object.fromEntries(Object.entries(this.checkoutForm.shipping_address).filter(([, v]) => v !== ""));
        if (this.me && this.checkoutForm.save_address) body.save_address = true;
      }
      if (this.checkoutForm.billing_differs) {
        body.billing_address = Object.fromEntries(Object.entries(this.checkoutForm.billing_address).filter(([, v]) => v !== ""));
      }
      if (extras.buy_link) body.buy_link = extras.buy_link;
      if (extras.recovery_token) body.recovery_token = extras.recovery_token;
      try {
        // One key per attempt at this cart: a double click or a retry after a timeout
        // returns the same order instead of placing two.
        const result = await this.call("POST", "/checkout", body, {"Idempotency-Key": this.idempotencyKey});
        this.cart = {}; this.saveCart(); sessionStorage.removeItem(EXTRAS_KEY);
        this.idempotencyKey = newKey();
        // A card order: on to the provider's page now; it comes back to the order page.
        if (result.payment) { location.href = result.payment.redirect_url; return; }
        this.placed = result;
      } catch (error) { this.error = error.message; }
      finally { this.busy = false; }
    },

    // --- accounts --------------------------------------------------------------------------
    async submit(run) {
      this.error = ""; this.message = ""; this.busy = true;
      try { await run(); } catch (error) { this.error = error.message; } finally { this.busy = false; }
    },
    login() {
      return this.submit(async () => {
        this.keepTokens(await this.call("POST", "/auth/login", {email: this.form.email, password: this.form.password}));
        location.href = this.url(this.cartCount ? "cart" : "account");
      });
    },
    register() {
      return this.submit(async () => {
        const body = {email: this.form.email, password: this.form.password};
        if (this.form.first_name) body.first_name = this.form.first_name;
        if (this.form.last_name) body.last_name = this.form.last_name;
        await this.call("POST", "/customers", body);
        this.message = this.t("registered");
      });
    },
    forgot() {
      return this.submit(async () => {
        await this.call("POST", "/auth/password/forgot", {email: this.form.email});
        this.message = this.t("link_sent");
      });
    },
    verifyEmail() {
      // The one who holds the inbox sets the password: one chosen before the email was
      // proven may be a stranger's, so it does not survive the confirmation.
      return this.submit(async () => {
        this.keepTokens(await this.call("POST", "/auth/verify-email", {token: this.query.token || "", password: this.form.password}));
        location.href = this.url("account");
      });
    },
    reset() {
      return this.submit(async () => {
        await this.call("POST", "/auth/password/reset", {token: this.query.token || "", password: this.form.password});
        this.message = this.t("password_set");
      });
    },
    activate() {
      // An invitation (token) or the account offered after a guest checkout (order + token).
      return this.submit(async () => {
        const body = this.query.order
          ? {order_id: this.query.order, token: this.query.token || "", password: this.form.password}
          : {token: this.query.token || "", password: this.form.password};
        this.keepTokens(await this.call("POST", "/auth/activate", body));
        location.href = this.url("account");
      });
    },
    saveProfile() {
      return this.submit(async () => {
        const body = Object.fromEntries(Object.entries(this.profileForm).map(([k, v]) => [k, v.trim() || null]));
        this.me = Object.assign({}, this.me, {profile: await this.call("PATCH", "/me", body)});
        this.message = this.t("saved");
      });
    },
    changePassword() {
      return this.submit(async () => {
        await this.call("POST", "/me/password", this.passwordForm);
        this.passwordForm = {current_password: "", new_password: ""};
        this.message = this.t("password_changed");
      });
    },
    startAddress() { this.newAddress = emptyAddress(); },
    saveAddress() {
      return this.submit(async () => {
        const body = Object.fromEntries(Object.entries(this.newAddress).filter(([, v]) => v !== ""));
        await this.call("POST", "/me/addresses", body);
        this.newAddress = null;
        this.addresses = (await this.call("GET", "/me/addresses")).items;
      });
    },
    deleteAddress(address) {
      return this.submit(async () => {
        await this.call("DELETE", `/me/addresses/${address.id}`);
        this.addresses = (await this.call("GET", "/me/addresses")).items;
      });
    },
  }));
});
