// Message queries with the Java client: by key (queryMessage over the index), by unique key
// (queryMessageByUniqKey, and viewMessage given the client's msgId) and by the broker's
// offset message id (viewMessage given offsetMsgId).
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class RefQuery {
    static String show(MessageExt m) {
        return m == null ? "null" : new String(m.getBody()) + "|" + m.getKeys() + "|" + m.getTags();
    }

    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = "JavaQuery";
        DefaultMQAdminExt admin = RefUtil.admin(ns);
        RefUtil.createTopic(admin, topic, 4);
        DefaultMQProducer p = RefUtil.producer(ns, "PG_JAVA_QUERY");
        long begin = System.currentTimeMillis() - 60000;
        SendResult last = null;
        for (int i = 0; i < 6; i++) {
            String key = i < 3 ? "order-17" : "order-" + (100 + i);
            Message m = new Message(topic, "Q", key, ("q" + i).getBytes());
            last = p.send(m);
        }
        Thread.sleep(1500); // the index is built behind the commit log
        long end = System.currentTimeMillis() + 60000;
        QueryResult qr = p.queryMessage(topic, "order-17", 32, begin, end);
        List<String> bodies = new ArrayList<>();
        for (MessageExt m : qr.getMessageList()) {
            bodies.add(new String(m.getBody()));
        }
        Collections.sort(bodies);
        RefUtil.result("byKey", String.join(",", bodies));
        try {
            QueryResult none = p.queryMessage(topic, "order-none", 32, begin, end);
            RefUtil.result("byMissingKey", none.getMessageList().size());
        } catch (MQClientException e) {
            RefUtil.result("byMissingKey", "code " + e.getResponseCode());
        }
        RefUtil.result("byUniqKey", show(p.getDefaultMQProducerImpl().queryMessageByUniqKey(topic, last.getMsgId())));
        RefUtil.result("viewByMsgId", show(admin.viewMessage(topic, last.getMsgId())));
        RefUtil.result("viewByOffsetMsgId", show(admin.viewMessage(topic, last.getOffsetMsgId())));
        MessageExt m = p.viewMessage(last.getOffsetMsgId());
        RefUtil.result("viewOffsetMsgIdMatches", m.getMsgId().equals(last.getMsgId()) && m.getQueueOffset() == last.getQueueOffset());
        p.shutdown();
        admin.shutdown();
        System.exit(0);
    }
}
