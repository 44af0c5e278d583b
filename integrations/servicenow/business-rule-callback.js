/**
 * Business rule "Portcullis approval callback" on change_request.
 *   When: async (after), Update.  Order: 200.
 *   Condition: current.approval.changes() && (current.approval == 'approved' || current.approval == 'rejected')
 *
 * Tells Portcullis the moment the CAB decides, so a deploy waiting on the review continues
 * within a second instead of at the next poll. Uses the outbound REST message `Portcullis` with
 * method `callback` (POST ${endpoint}/v1/servicenow/callback, body below); its auth profile holds
 * a Portcullis token with the `approver` role. Polling catches up if this call is lost, and the
 * two agree: the first resolution wins, the second is a no-op.
 */
(function executeRule(current, previous) {
    var approver = '';
    var gr = new GlideRecord('sysapproval_approver');
    gr.addQuery('sysapproval', current.getUniqueValue());
    gr.addQuery('state', current.getValue('approval'));
    gr.orderByDesc('sys_updated_on');
    gr.setLimit(1);
    gr.query();
    if (gr.next()) {
        approver = gr.approver.user_name + '';
    }
    var rm = new sn_ws.RESTMessageV2('Portcullis', 'callback');
    rm.setRequestBody(JSON.stringify({
        number: current.getValue('number'),
        sys_id: current.getUniqueValue(),
        approval: current.getValue('approval'),   // raw value: approved | rejected
        approver: approver
    }));
    rm.setHttpTimeout(10000);
    try {
        var response = rm.execute();
        if (response.getStatusCode() >= 300) {
            gs.warn('Portcullis callback for ' + current.number + ' answered ' + response.getStatusCode());
        }
    } catch (e) {
        gs.warn('Portcullis callback for ' + current.number + ' failed: ' + e);
    }
})(current, previous);
