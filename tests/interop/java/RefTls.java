// The Java client over TLS (run with -Dtls.enable=true and the tls.client.* properties).
// args: ns topic group n. A producer sends n messages and a push consumer receives them;
// with n = 1 only the send is tried, with a 5 s timeout (the refusal cases). Reports:
//   sent       messages sent, or "failed: <exception>" when the first send fails
//   received   messages received (n > 1)
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.Message;

public class RefTls {
    public static void main(String[] args) throws Exception {
        String ns = args[0];
        String topic = args[1];
        String group = args[2];
        int n = Integer.parseInt(args[3]);
        DefaultMQProducer p = new DefaultMQProducer("PG_JAVA_TLS");
        p.setNamesrvAddr(ns);
        p.setInstanceName("tls-p-" + System.nanoTime());
        p.setSendMsgTimeout(n == 1 ? 5000 : 15000);
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        if (n == 1) {
            try {
                p.send(new Message(topic, "T", "tls".getBytes()));
                RefUtil.result("sent", 1);
            } catch (Exception e) {
                RefUtil.result("sent", "failed: " + e);
            }
            p.shutdown();
            System.exit(0);
        }
        DefaultMQPushConsumer c = RefUtil.pushConsumer(ns, group);
        c.setInstanceName("tls-c");
        RefUtil.sendAndReceive(p, c, topic, n);
        p.shutdown();
        c.shutdown();
        System.exit(0);
    }
}
