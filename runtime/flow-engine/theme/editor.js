/* FLUX's editor theme (runtime/flow-engine/theme): a title and a sign-in hint in the login dialog,
 * in the browser's language (English or Simplified Chinese). */
/* global navigator, document, MutationObserver */
(function () {
  var zh = /^zh\b/i.test((navigator.languages && navigator.languages[0]) || navigator.language || '');
  var text = zh
    ? { title: 'FLUX IOT · 流程编辑器', hint: '使用 FLUX 管理员用户登录。应急时：用户名 admin，密码为管理员令牌（首次启动时打印，保存在数据目录的 admin-token 文件中）。' }
    : { title: 'FLUX IOT · flow editor', hint: 'Sign in with a FLUX admin user. Break-glass: user name admin with the admin token as password (printed at the first start, kept in admin-token in the data folder).' };
  function decorate(form) {
    if (form.querySelector('.flux-login-title')) return;
    var title = document.createElement('div');
    title.className = 'flux-login-title';
    title.textContent = text.title;
    var hint = document.createElement('div');
    hint.className = 'flux-login-hint';
    hint.textContent = text.hint;
    form.insertBefore(hint, form.firstChild);
    form.insertBefore(title, hint);
  }
  new MutationObserver(function () {
    var form = document.getElementById('node-dialog-login-fields');
    if (form && form.querySelector('input')) decorate(form);
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
