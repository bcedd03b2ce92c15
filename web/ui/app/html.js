// Components are written as tagged templates (htm) over Preact's `h`:
// JSX-like markup without a compiler, so the files are served as written.
import { h } from "preact";
import htm from "htm";

export const html = htm.bind(h);
