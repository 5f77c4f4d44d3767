// Shared helpers for the Java oracle programs (tests/interop/java_client.test.mjs).
// Each program takes the NameServer address as its first argument, prints its findings as
// "RESULT name=value" lines on stdout for the node test to assert, and exits 0 when it got
// that far (a thrown exception exits 1 with the stack on stderr).
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.protocol.body.ClusterInfo;
import org.apache.rocketmq.common.protocol.route.BrokerData;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

final class RefUtil {
    private RefUtil() {
    }

    static void result(String name, Object value) {
        System.out.println("RESULT " + name + "=" + value);
        System.out.flush();
    }

    static boolean await(BooleanSupplier cond, long ms) throws InterruptedException {
        long end = System.currentTimeMillis() + ms;
        while (System.currentTimeMillis() < end) {
            if (cond.getAsBoolean()) {
                return true;
            }
            Thread.sleep(50);
        }
        return cond.getAsBoolean();
    }

    // A started producer; sends wait up to 15 s (a loaded machine can be slow to start up).
    static DefaultMQProducer producer(String ns, String group) throws Exception {
        return producer(ns, group, null);
    }

    static DefaultMQProducer producer(String ns, String group, String instance) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(ns);
        if (instance != null) {
            p.setInstanceName(instance);
        }
        p.setSendMsgTimeout(15000);
        p.start();
        return p;
    }

    // A push consumer not started yet, reading a new group's queues from their start.
    static DefaultMQPushConsumer pushConsumer(String ns, String group) {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(group);
        c.setNamesrvAddr(ns);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        return c;
    }

    // Starts c (configured, not started) subscribed to every tag of topic, sends n messages
    // with p and waits up to 60 s for all of them; reports "sent" and "received" (distinct
    // bodies).
    static void sendAndReceive(DefaultMQProducer p, DefaultMQPushConsumer c, String topic, int n)
        throws Exception {
        Set<String> got = ConcurrentHashMap.newKeySet();
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                got.add(new String(m.getBody()));
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        int sent = 0;
        for (int i = 0; i < n; i++) {
            if (p.send(new Message(topic, "T", ("m-" + i).getBytes())).getSendStatus() == SendStatus.SEND_OK) {
                sent++;
            }
        }
        result("sent", sent);
        await(() -> got.size() >= n, 60000);
        result("received", got.size());
    }

    static DefaultMQAdminExt admin(String ns) throws Exception {
        DefaultMQAdminExt a = new DefaultMQAdminExt(5000);
        a.setNamesrvAddr(ns);
        a.setInstanceName("ref-admin-" + System.nanoTime());
        a.start();
        return a;
    }

    static List<String> brokerAddrs(DefaultMQAdminExt a) throws Exception {
        ClusterInfo ci = a.examineBrokerClusterInfo();
        List<String> out = new ArrayList<>();
        for (BrokerData bd : ci.getBrokerAddrTable().values()) {
            out.add(bd.selectBrokerAddr());
        }
        return out;
    }

    // Creates the topic on every broker and waits until the NameServer routes it.
    static void createTopic(DefaultMQAdminExt a, String topic, int queues) throws Exception {
        for (String addr : brokerAddrs(a)) {
            TopicConfig tc = new TopicConfig(topic, queues, queues, 6);
            a.createAndUpdateTopicConfig(addr, tc);
        }
        long end = System.currentTimeMillis() + 10000;
        while (true) {
            try {
                if (a.examineTopicRouteInfo(topic).getQueueDatas().size() > 0) {
                    return;
                }
            } catch (Exception e) {
                if (System.currentTimeMillis() > end) {
                    throw e;
                }
            }
            Thread.sleep(100);
        }
    }
}
