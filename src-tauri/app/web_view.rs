//! How the window's web view is set up for what it shows: one local page, the call dock UI,
//! with no navigation, no remote content, no WebGL and no media elements (the calls' audio is
//! the engine's, not the page's).
//!
//! On Linux, WebKitGTK's defaults suit a browser: Tauri's webview library turns WebGL and the
//! back/forward page cache on, the resource cache is sized for browsing, and with hardware
//! acceleration on, the web process composites with GL. On a machine without a GPU that is
//! Mesa's software GL, and it cost the web process 85 MiB more (185 MiB instead of 100 MiB,
//! measured under Xvfb; docs/benchmarks.md). The call dock draws a few boxes and a 2D canvas,
//! which WebKit's CPU renderer handles with ease, so hardware acceleration is off everywhere
//! and the page gets the settings of a document viewer. (Before this, the tests and the
//! benchmark set `WEBKIT_DISABLE_COMPOSITING_MODE` for the app, so they measured a setup a user
//! would not have had.) macOS and Windows keep their system web view's defaults.

/// Before anything starts a thread or GTK: WebKitGTK reads these switches from the environment
/// only, and its web process inherits them. A value the user set is kept.
///
/// - `WEBKIT_DISABLE_COMPOSITING_MODE=1`: with hardware acceleration off, WebKit still
///   composites the page in tiles on the CPU; without compositing it paints one backing store,
///   about 10 MiB less in the web process during a call.
/// - `JSC_useJIT=0`: JavaScriptCore runs the page's script in its interpreter. The call dock's
///   script is small and mostly waits for events; the JIT's code and its 1 GiB writable and
///   executable region cost about 10 MiB in the web process (the desktop benchmark, start to
///   interactive unchanged), and a page with no JIT has no memory that is both writable and
///   executable, which the real-window test checks.
///
/// Figures in docs/benchmarks.md.
pub fn prepare_environment() {
    #[cfg(target_os = "linux")]
    for (name, value) in [("WEBKIT_DISABLE_COMPOSITING_MODE", "1"), ("JSC_useJIT", "0")] {
        if std::env::var_os(name).is_none() {
            // SAFETY: called from `main` before any thread exists, so nothing reads the
            // environment while it changes.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

/// Applies the settings to the main window's web view, just after it is built (WebKit applies
/// them to the page it is loading; the real-window test checks the result).
pub fn configure(window: &tauri::WebviewWindow) {
    #[cfg(target_os = "linux")]
    if let Err(e) = window.with_webview(|view| linux::configure(&view.inner())) {
        tracing::warn!(error = %e, "the web view keeps WebKit's default settings");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = window;
}

#[cfg(target_os = "linux")]
mod linux {
    use webkit2gtk::{CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt};

    pub fn configure(view: &webkit2gtk::WebView) {
        if let Some(settings) = WebViewExt::settings(view) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            settings.set_enable_webgl(false);
            settings.set_enable_page_cache(false);
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
    }
}
