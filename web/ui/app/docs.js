// The interactive API docs (/docs): Swagger UI over the gateway's own
// /openapi.json, all from the binary (no network). "Authorize" takes a
// token from POST /auth/token (or the one the app is signed in with).
window.addEventListener("load", () => {
  const ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#docs",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
    // No call to the public validator service: the docs work offline.
    validatorUrl: null,
  });
  const token = localStorage.getItem("boxoffice.token");
  if (token) ui.preauthorizeApiKey("bearerAuth", token);
});
