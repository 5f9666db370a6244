/* FLUX's editor addition (runtime/flow-engine/http-endpoints.ts): the `http in` node gets an "Auth"
 * choice (public, device secret, token with a minimum role), kept as the node's `auth` and `role`. */
/* global RED, $ */
(function () {
  var timer = setInterval(function () {
    if (typeof RED === 'undefined' || !RED.nodes || !RED.nodes.getType) return;
    var def = RED.nodes.getType('http in');
    if (!def) return;
    clearInterval(timer);
    if (def.defaults.auth) return;
    def.defaults.auth = { value: 'public' };
    def.defaults.role = { value: 'admin' };
    var prepare = def.oneditprepare;
    def.oneditprepare = function () {
      if (prepare) prepare.apply(this, arguments);
      var row = $('<div class="form-row"><label for="node-input-auth"><i class="fa fa-lock"></i> Auth</label>' +
        '<select id="node-input-auth" style="width:70%"><option value="public">public</option><option value="device">device id + secret</option><option value="token">token</option></select></div>' +
        '<div class="form-row" id="flux-http-role-row"><label for="node-input-role">Min. role</label><select id="node-input-role" style="width:70%"><option value="viewer">viewer</option><option value="operator">operator</option><option value="admin">admin</option></select></div>');
      $('#node-input-url').closest('.form-row').after(row);
      $('#node-input-auth').val(this.auth || 'public').on('change', function () {
        $('#flux-http-role-row').toggle($(this).val() === 'token');
      }).trigger('change');
      $('#node-input-role').val(this.role || 'admin');
    };
  }, 200);
})();
