//! A small todo list with two routes and a Leptos server function: a stand-in
//! for "your app", embedding version-observer the way the README's "Add it to
//! your app" section says.

use leptos::prelude::*;
use leptos_meta::Stylesheet;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path,
};
use version_observer::GuardedError;
use version_observer::ReloadOnNavigation;
use version_observer::VersionBanner;

/// The HTML document (server only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        // Your styles (the manifest's `style-file`), as /pkg/<output-name>.css.
        <Stylesheet id="leptos" href="/pkg/version-observer.css"/>
        <Title text="Todo"/>
        <Router>
            // The one line for the banner:
            <VersionBanner/>
            // And, optionally: once stale, the next link loads the new version.
            <ReloadOnNavigation/>
            <nav class="todo-nav">
                <A href="/">"Todos"</A>
                <A href="/about">"About"</A>
            </nav>
            <main class="todo-main">
                <Routes fallback=|| "Not found.">
                    <Route path=path!("") view=Todos/>
                    <Route path=path!("about") view=About/>
                </Routes>
            </main>
        </Router>
    }
}

/// Adds a todo, on the server. Behind the request guard, a page of an
/// incompatible version never runs it (the next version may take other
/// arguments): the call fails with `GuardedError::StaleClient`.
#[server]
pub async fn add_todo(text: String) -> Result<Vec<String>, GuardedError> {
    let mut todos = store::TODOS.lock().unwrap();
    let text = text.trim();
    if !text.is_empty() {
        todos.push(text.to_owned());
    }
    Ok(todos.clone())
}

/// Every todo, from the server.
#[server]
pub async fn list_todos() -> Result<Vec<String>, GuardedError> {
    Ok(store::TODOS.lock().unwrap().clone())
}

#[cfg(feature = "ssr")]
mod store {
    pub static TODOS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
}

#[component]
fn Todos() -> impl IntoView {
    let add = ServerAction::<AddTodo>::new();
    let todos = Resource::new(move || add.version().get(), |_| list_todos());
    view! {
        <h1>"Todos"</h1>
        <ActionForm action=add attr:class="todo-form">
            <input type="text" name="text" placeholder="What needs doing?" data-testid="todo-input"/>
            <button type="submit" data-testid="todo-add">"Add"</button>
        </ActionForm>
        {move || match add.value().get() {
            Some(Err(GuardedError::StaleClient(_))) => Some(view! {
                <p class="todo-error" data-testid="todo-error">"Not saved: this page is out of date. Reload, then add it again."</p>
            }),
            _ => None,
        }}
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            <ul class="todo-list" data-testid="todo-list">
                {move || todos.get().map(|list| {
                    list.unwrap_or_default()
                        .into_iter()
                        .map(|t| view! { <li>{t}</li> })
                        .collect_view()
                })}
            </ul>
        </Suspense>
    }
}

/// A second route that loads data through a `Resource` inside
/// `<Suspense>`: rendered on the server with its data, then hydrated.
#[component]
fn About() -> impl IntoView {
    let todos = Resource::new(|| (), |_| list_todos());
    let details = RwSignal::new(false);
    view! {
        <h1>"About"</h1>
        <p data-testid="about">"A todo list that knows when it is out of date."</p>
        <Suspense fallback=|| view! { <p>"Counting…"</p> }>
            // In a Resource's view: the banner speaks for a refused refetch.
            {move || match todos.get() {
                Some(Ok(list)) => Some(view! { <p data-testid="todo-count">{format!("{} todos so far.", list.len())}</p> }.into_any()),
                Some(Err(GuardedError::StaleClient(_))) | None => None,
                Some(Err(_)) => Some(view! { <p class="todo-error">"Could not count the todos."</p> }.into_any()),
            }}
        </Suspense>
        <button data-testid="about-more" on:click=move |_| details.update(|d| *d = !*d)>"More"</button>
        <Show when=move || details.get()>
            <p data-testid="about-details">"It shows a banner when a new version is out."</p>
        </Show>
    }
}

/// The wasm entry point.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
