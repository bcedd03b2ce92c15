// Log in and sign up. Signing up logs the new customer in.
import { useState } from "preact/hooks";
import { html } from "../html.js";
import { api, blame } from "../api.js";
import { navigate } from "../router.js";
import { signIn, takeNotice } from "../session.js";
import { useSubmit } from "../hooks.js";
import { Button, Field, Notice, PageTitle, ProblemAlert } from "../components/ui.js";

const FIELDS = { username: ["username", "user"], password: ["password"] };

function AuthForm({ mode, next }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const submit = useSubmit(async () => {
    if (mode === "signup") {
      await api("POST", "/auth/signup", { body: { username, password } });
    }
    const token = await api("POST", "/auth/token", { body: { username, password } });
    const session = signIn(token.accessToken);
    const home = session && session.user.role === "admin" ? "/admin/dashboard" : "/";
    navigate(next || home);
  });
  const blamed = blame(submit.problem, FIELDS);
  const error = (field) => (blamed === field ? submit.problem.detail : null);
  const signup = mode === "signup";
  return html`
    <form class="panel narrow" onSubmit=${(e) => { e.preventDefault(); submit.run(); }} novalidate>
      ${!blamed && html`<${ProblemAlert} problem=${submit.problem} onRetry=${() => submit.run()} />`}
      <${Field} label="Username" name="username" autocomplete="username" value=${username}
        onInput=${(e) => setUsername(e.currentTarget.value)} error=${error("username")}
        hint=${signup ? "3 to 32 letters, digits, '.', '_' or '-'." : null} required />
      <${Field} label="Password" name="password" type="password" value=${password}
        autocomplete=${signup ? "new-password" : "current-password"}
        onInput=${(e) => setPassword(e.currentTarget.value)} error=${error("password")}
        hint=${signup ? "At least 8 characters." : null} required />
      <${Button} type="submit" busy=${submit.busy} busyText=${signup ? "Creating your account" : "Logging in"}>
        ${signup ? "Create account" : "Log in"}
      </${Button}>
      <p class="hint">
        ${signup
          ? html`Have an account? <a href=${`#/login${next ? `?next=${encodeURIComponent(next)}` : ""}`}>Log in</a>`
          : html`New here? <a href=${`#/signup${next ? `?next=${encodeURIComponent(next)}` : ""}`}>Create an account</a>`}
      </p>
    </form>
  `;
}

export function AuthPage({ path, params, reason }) {
  const mode = path.startsWith("/signup") ? "signup" : "login";
  const [ended] = useState(() => takeNotice());
  return html`
    <${PageTitle}>${mode === "signup" ? "Create an account" : "Log in"}</${PageTitle}>
    ${(ended || reason) && html`<${Notice}>${ended || reason}</${Notice}>`}
    <${AuthForm} key=${mode} mode=${mode} next=${params && params.next} />
  `;
}
